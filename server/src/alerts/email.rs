//! Email alerts over SMTP (lettre): STARTTLS on the submission port by default, or TLS
//! from the first byte (`tls = "implicit"`, port 465); never in the clear. A private CA
//! (`ca`, a PEM file) is trusted beside the system's roots.

use std::time::Duration;

use lettre::{
    message::{header::ContentType, Mailbox},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use serde::Deserialize;

use super::{read_secret, AlertEvent, Secret};

/// How an alert reaches its SMTP server, as `smtp = { .. }` of `[[alerts]]` writes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpFile {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    pub from: String,
    /// `env:NAME` or `file:PATH`, as every secret.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// `starttls` (default) or `implicit`.
    #[serde(default)]
    pub tls: Option<String>,
    /// A PEM file of a CA to trust besides the system's (a private relay's).
    #[serde(default)]
    pub ca: Option<String>,
}

/// An SMTP server, checked.
#[derive(Clone, Debug)]
pub struct Smtp {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) from: Mailbox,
    pub(crate) credentials: Option<(Secret, Secret)>,
    pub(crate) implicit_tls: bool,
    pub(crate) ca: Option<Vec<u8>>,
}

impl Smtp {
    /// An SMTP server at `host`, with STARTTLS on port 587, sending as `from`.
    pub fn new(host: impl Into<String>, from: &str) -> Result<Self, String> {
        Ok(Smtp {
            host: host.into(),
            port: 587,
            from: from
                .parse()
                .map_err(|e| format!("from: {from:?} is not an address: {e}"))?,
            credentials: None,
            implicit_tls: false,
            ca: None,
        })
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn credentials(mut self, user: Secret, password: Secret) -> Self {
        self.credentials = Some((user, password));
        self
    }

    /// Trusts the CA of this PEM besides the system's roots.
    pub fn ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca = Some(pem);
        self
    }

    /// TLS from the first byte (port 465) rather than STARTTLS.
    pub fn implicit_tls(mut self) -> Self {
        self.implicit_tls = true;
        self
    }

    pub(crate) fn from_file(f: &SmtpFile) -> Result<Self, String> {
        let mut smtp = Smtp::new(f.host.clone(), &f.from)?;
        smtp.implicit_tls = match f.tls.as_deref() {
            None | Some("starttls") => false,
            Some("implicit") => true,
            Some(other) => {
                return Err(format!(
                    "tls: {other:?} is neither \"starttls\" nor \"implicit\" (mail is never sent in the clear)"
                ))
            }
        };
        smtp.port = f.port.unwrap_or(if smtp.implicit_tls { 465 } else { 587 });
        smtp.credentials = match (&f.username, &f.password) {
            (Some(u), Some(p)) => Some((
                read_secret(u, false).map_err(|e| format!("username: {e}"))?,
                read_secret(p, false).map_err(|e| format!("password: {e}"))?,
            )),
            (None, None) => None,
            _ => return Err("username and password go together".into()),
        };
        if let Some(path) = &f.ca {
            smtp.ca =
                Some(std::fs::read(path).map_err(|e| format!("ca: cannot read {path}: {e}"))?);
        }
        Ok(smtp)
    }

    /// The transport, made once per alert.
    pub(crate) fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let mut tls = TlsParameters::builder(self.host.clone());
        if let Some(pem) = &self.ca {
            let cert = Certificate::from_pem(pem).map_err(|e| format!("ca: {e}"))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls.build_rustls().map_err(|e| e.to_string())?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .timeout(Some(Duration::from_secs(10)))
            .tls(if self.implicit_tls {
                Tls::Wrapper(tls)
            } else {
                Tls::Required(tls)
            });
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(
                user.expose().to_owned(),
                password.expose().to_owned(),
            ));
        }
        Ok(builder.build())
    }
}

/// The recipients of `mailto:a@x,b@y`.
pub(crate) fn recipients(to: &str) -> Result<Vec<Mailbox>, String> {
    let list = to
        .strip_prefix("mailto:")
        .ok_or_else(|| format!("an email alert's to is mailto:address[,address], got {to:?}"))?;
    list.split(',')
        .map(|a| {
            a.trim()
                .parse::<Mailbox>()
                .map_err(|e| format!("{:?} is not an address: {e}", a.trim()))
        })
        .collect()
}

/// What one try came to: sent, worth trying again (a transient error, no connection),
/// or refused for good (a permanent SMTP error).
pub(crate) enum Sent {
    Yes,
    Again(String),
    Never(String),
}

/// Sends `group` (standing for `total` events) as one message.
pub(crate) async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    smtp: &Smtp,
    to: &[Mailbox],
    alert: &str,
    group: &[AlertEvent],
    total: u64,
) -> Sent {
    let summary = super::payload::summary(group, total);
    let mut text = format!("{summary}\n\n");
    for e in group {
        text.push_str(&format!(
            "- {} {}: {}\n  {}\n",
            e.pipeline, e.event, e.message, e.link
        ));
    }
    if total > group.len() as u64 {
        text.push_str(&format!(
            "\n... and {} more events.\n",
            total - group.len() as u64
        ));
    }
    text.push_str(&format!("\nSent by flowdeck for the alert {alert:?}.\n"));
    let mut message = Message::builder()
        .from(smtp.from.clone())
        .subject(summary)
        .header(ContentType::TEXT_PLAIN);
    for r in to {
        message = message.to(r.clone());
    }
    let message = match message.body(text) {
        Ok(m) => m,
        Err(e) => return Sent::Never(e.to_string()),
    };
    match transport.send(message).await {
        Ok(_) => Sent::Yes,
        Err(e) if e.is_permanent() => Sent::Never(e.to_string()),
        Err(e) => Sent::Again(e.to_string()),
    }
}
