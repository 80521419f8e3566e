// A TCP proxy between the browser and the server that can cut every open connection, to
// drop the live stream the way a flaky network does. It also notes each request's
// Last-Event-ID header and the first SSE event name of each response (reading through the
// chunked transfer coding and the stream's gzip or brotli, as the client does).
import net from 'node:net';
import zlib from 'node:zlib';
import { PassThrough } from 'node:stream';

// Calls `found` with the first SSE event name in a response whose bytes are fed to it.
function eventSniffer(found) {
  let head = Buffer.alloc(0);
  let decoder = null;
  let chunked = false;
  let pending = Buffer.alloc(0);
  let remaining = -1; // bytes left in the current chunk; -1 while reading a size line
  let text = '';
  // Set at the end of the first response: later responses on the same kept-alive
  // connection are not read (a size line of theirs would not parse, and a size that is
  // not a number never ends the loop below).
  let over = false;
  const body = (bytes) => {
    if (over) return;
    if (!chunked) { decoder.write(bytes); return; }
    pending = Buffer.concat([pending, bytes]);
    for (;;) {
      if (remaining < 0) {
        const eol = pending.indexOf('\r\n');
        if (eol < 0) return;
        const line = pending.subarray(0, eol);
        pending = pending.subarray(eol + 2);
        // An empty line is the CRLF that ends the chunk before.
        if (line.length === 0) continue;
        remaining = parseInt(line.toString('latin1'), 16);
        if (!(remaining > 0)) { over = true; return; }
      }
      if (pending.length === 0) return;
      const n = Math.min(remaining, pending.length);
      decoder.write(pending.subarray(0, n));
      pending = pending.subarray(n);
      remaining -= n;
      if (remaining === 0) remaining = -1;
    }
  };
  return (chunk) => {
    if (decoder === null) {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const headers = head.subarray(0, end).toString('latin1');
      const coding = headers.match(/^content-encoding:\s*(\S+)/im)?.[1];
      chunked = /^transfer-encoding:\s*chunked/im.test(headers);
      decoder = coding === 'gzip' ? zlib.createGunzip()
        : coding === 'br' ? zlib.createBrotliDecompress() : new PassThrough();
      decoder.on('error', () => {});
      decoder.on('data', (d) => {
        text += d.toString('latin1');
        const m = text.match(/^event:[ \t]*(\S+)\r?\n/m);
        if (m) { found(m[1]); decoder.removeAllListeners('data'); }
      });
      chunk = head.subarray(end + 4);
    }
    body(chunk);
  };
}

export async function startProxy(target) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  const requests = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client); sockets.add(upstream);
    let head = '';
    const record = { lastEventId: null, firstEvent: null, path: null };
    const sniff = eventSniffer((name) => { if (record.firstEvent === null) record.firstEvent = name; });
    client.on('data', (chunk) => {
      if (record.path === null) {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end >= 0) {
          record.path = head.split(' ')[1];
          const m = head.slice(0, end).match(/^last-event-id:\s*(.+)$/im);
          record.lastEventId = m ? m[1].trim() : null;
          requests.push(record);
        }
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (record.firstEvent === null) sniff(chunk);
      client.write(chunk);
    });
    const close = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on('error', close); upstream.on('error', close);
    client.on('close', close); upstream.on('close', close);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    /** Cuts every open connection, as a network failure would. */
    cut() { for (const s of sockets) s.destroy(); sockets.clear(); },
    stop() { this.cut(); return new Promise((r) => server.close(r)); },
  };
}
