//! The live stream's compression, per connection. Frames repeat each other (the same keys,
//! stage names and counts that move a little), so a compression context kept across frames
//! shrinks the stream five- to tenfold where compressing each frame alone would not. Each
//! frame is flushed (brotli's flush, deflate's sync flush), so it leaves whole at once: the
//! compression holds nothing back for the next frame.
//!
//! tower-http's `CompressionLayer` (which compresses pages and JSON) cannot do this: it
//! flushes when its buffer fills, not per frame, which is why it skips `text/event-stream`.

use std::io::Write;

use axum::http::HeaderMap;

/// Deflate's level for gzip, the stream's first choice: on these frames it makes as few
/// bytes as brotli at quality 4 for less CPU (docs/dashboard.md has the figures: a
/// thousand gzip clients of the demo take 58% of a core, brotli's 80%).
const GZIP_LEVEL: u32 = 5;
/// Brotli's quality, for a client that takes brotli and not gzip. Quality 5 saves 5 to 10%
/// more bytes but cannot keep a thousand clients on one core (91% of it, frames late).
const BROTLI_QUALITY: u32 = 4;
/// Brotli's window, 2^18 = 256 KiB: several frames back at the highest rates measured.
const BROTLI_WINDOW: u32 = 18;

/// One connection's encoder.
pub(crate) enum Encoder {
    Identity,
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
}

impl Encoder {
    /// The encoding for a client that sent `headers`: gzip if it takes it, else brotli if
    /// it takes that, else none; with its `Content-Encoding`.
    pub(crate) fn for_request(headers: &HeaderMap) -> (Encoder, Option<&'static str>) {
        let (br, gz) = (
            crate::assets::accepts(headers, "br"),
            crate::assets::accepts(headers, "gzip"),
        );
        if gz > 0.0 && gz >= br {
            let w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
            (Encoder::Gzip(w), Some("gzip"))
        } else if br > 0.0 {
            let w =
                brotli::CompressorWriter::new(Vec::new(), 16 * 1024, BROTLI_QUALITY, BROTLI_WINDOW);
            (Encoder::Brotli(Box::new(w)), Some("br"))
        } else {
            (Encoder::Identity, None)
        }
    }

    /// `text` as the connection sends it: compressed and flushed, so that the client can
    /// read all of it from these bytes and the ones before.
    pub(crate) fn frame(&mut self, text: Vec<u8>) -> Vec<u8> {
        // Writing to a Vec cannot fail.
        match self {
            Encoder::Identity => text,
            Encoder::Brotli(w) => {
                let _ = w.write_all(&text);
                let _ = w.flush();
                std::mem::take(w.get_mut())
            }
            Encoder::Gzip(w) => {
                let _ = w.write_all(&text);
                let _ = w.flush();
                std::mem::take(w.get_mut())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("accept-encoding", value.parse().unwrap());
        h
    }

    /// Each frame, decoded from the bytes so far, is whole: nothing waits for the next.
    #[test]
    fn every_frame_is_whole_once_sent() {
        for (accept, coding) in [("br", "br"), ("gzip, deflate, br", "gzip")] {
            let (mut enc, name) = Encoder::for_request(&accepting(accept));
            assert_eq!(name, Some(coding));
            let mut sent = Vec::new();
            let mut want = Vec::new();
            for n in 0..50 {
                // A frame of the usual kind: the same keys, counts that move a little.
                let stages: Vec<String> = (0..10)
                    .map(|i| {
                        format!(
                            r#"{{"name":"stage-{i}","queued":{},"done":{}}}"#,
                            n * i,
                            n + i
                        )
                    })
                    .collect();
                let text = format!(
                    "event: delta\nid: {n}\ndata: {{\"id\":{n},\"stages\":[{}]}}\n\n",
                    stages.join(",")
                );
                want.extend_from_slice(text.as_bytes());
                sent.extend(enc.frame(text.into_bytes()));
                let mut got = Vec::new();
                // A decoder reads what there is; the stream has no end yet.
                let _ = match coding {
                    "br" => brotli::Decompressor::new(&sent[..], 4096).read_to_end(&mut got),
                    _ => flate2::read::GzDecoder::new(&sent[..]).read_to_end(&mut got),
                };
                assert_eq!(got, want, "{coding}, frame {n}");
            }
            assert!(
                sent.len() * 3 < want.len(),
                "{coding}: {} of {}",
                sent.len(),
                want.len()
            );
        }
        assert!(matches!(
            Encoder::for_request(&HeaderMap::new()).0,
            Encoder::Identity
        ));
        assert!(matches!(
            Encoder::for_request(&accepting("br;q=0, gzip;q=0")).0,
            Encoder::Identity
        ));
        assert_eq!(
            Encoder::for_request(&accepting("gzip;q=0.5, br")).1,
            Some("br")
        );
    }
}
