//! A minimal HTTP/1.1 client over `tokio::net::TcpStream`: keep-alive, `Content-Length`
//! and chunked bodies. Enough for `bench query` against goatview or the PostgreSQL baseline.

use anyhow::bail;

/// Where requests go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `host:port` to connect to and send as `Host`.
    pub authority: String,
    /// Path prefix before `/api/…`, without a trailing slash.
    pub prefix: String,
    /// The `Authorization` header line, if any.
    pub auth: Option<String>,
}

impl Target {
    pub fn parse(url: &str, key: Option<&str>) -> anyhow::Result<Target> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--url must start with http:// (got {url:?})");
        };
        let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() {
            bail!("--url has no host: {url:?}");
        }
        let authority = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
        let prefix = prefix.trim_end_matches('/');
        Ok(Target {
            authority,
            prefix: if prefix.is_empty() { String::new() } else { format!("/{prefix}") },
            auth: key.map(|k| format!("Authorization: Bearer {k}\r\n")),
        })
    }
}

/// One keep-alive HTTP/1.1 connection.
pub(super) struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
}

/// A response: status and body.
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
}

impl Conn {
    pub(super) async fn connect(authority: &str) -> std::io::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: Vec::with_capacity(64 << 10), pos: 0 })
    }

    /// Sends a `GET` and reads the whole answer. `Ok((response, keep))`: `keep` is false
    /// when the server closes the connection after it.
    pub(super) async fn get(&mut self, target: &Target, path: &str) -> std::io::Result<(Response, bool)> {
        let auth = target.auth.as_deref().unwrap_or("");
        let req = format!(
            "GET {}{path} HTTP/1.1\r\nHost: {}\r\n{auth}Accept: application/json\r\n\r\n",
            target.prefix, target.authority
        );
        self.write_all(req.as_bytes()).await?;

        let head_end = loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n\r\n") {
                break self.pos + i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[self.pos..head_end]).map_err(|_| invalid("non-UTF-8 header"))?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("bad status line"))?;
        let (mut length, mut chunked, mut keep) = (None, false, true);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| invalid("bad Content-Length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                keep = !value.eq_ignore_ascii_case("close");
            }
        }
        self.pos = head_end;

        let mut body = Vec::new();
        if chunked {
            loop {
                let line = self.line().await?;
                let size = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
                if size == 0 {
                    while !self.line().await?.is_empty() {}
                    break;
                }
                body.extend_from_slice(self.take(size).await?);
                if !self.line().await?.is_empty() {
                    return Err(invalid("chunk not followed by CRLF"));
                }
            }
        } else if let Some(n) = length {
            body.extend_from_slice(self.take(n).await?);
        } else {
            // Neither: the body runs to the end of the connection.
            while self.fill().await.is_ok() {}
            body.extend_from_slice(&self.buf[self.pos..]);
            self.pos = self.buf.len();
            keep = false;
        }
        Ok((Response { status, body }, keep))
    }

    /// The next CRLF-terminated line, without the CRLF.
    async fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[self.pos..self.pos + i]).into_owned();
                self.pos += i + 2;
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    /// The next `n` bytes.
    async fn take(&mut self, n: usize) -> std::io::Result<&[u8]> {
        while self.buf.len() - self.pos < n {
            self.fill().await?;
        }
        self.pos += n;
        Ok(&self.buf[self.pos - n..self.pos])
    }

    /// Reads more bytes; an error at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<()> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > self.buf.capacity() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 64 << 10];
        loop {
            self.stream.readable().await?;
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn write_all(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parses_urls() {
        let t = Target::parse("http://127.0.0.1:8080/", Some("k")).unwrap();
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.prefix, "");
        assert_eq!(t.auth.as_deref(), Some("Authorization: Bearer k\r\n"));
        let t = Target::parse("http://localhost/base/", None).unwrap();
        assert_eq!((t.authority.as_str(), t.prefix.as_str(), t.auth), ("localhost:80", "/base", None));
        assert!(Target::parse("https://x", None).is_err());
    }
}
