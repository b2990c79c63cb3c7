//! A minimal HTTP/1.1 client over a plain TCP connection, enough for the
//! bench's JSON requests and streamed multipart uploads: one request per
//! connection (`Connection: close`), the response read to its end.

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// `http://host:port` → `host:port`.
fn authority(base: &str) -> Result<&str, String> {
    base.strip_prefix("http://")
        .map(|a| a.trim_end_matches('/'))
        .ok_or_else(|| format!("only http:// URLs are supported: {base}"))
}

async fn send(
    base: &str,
    head: String,
    body: impl FnOnce(&mut TcpStream) -> BodyFut<'_>,
) -> Result<(u16, Value), String> {
    let mut conn = TcpStream::connect(authority(base)?)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    conn.set_nodelay(true).ok();
    conn.write_all(head.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    body(&mut conn).await?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no response head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let json = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        serde_json::from_str(&dechunk(body)).unwrap_or(Value::Null)
    } else {
        serde_json::from_str(body).unwrap_or(Value::Null)
    };
    Ok((status, json))
}

type BodyFut<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// GET with a Bearer token; the response status and JSON body.
pub async fn get_json(base: &str, path: &str, token: &str) -> Result<(u16, Value), String> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n",
        authority(base)?
    );
    send(base, head, |_| Box::pin(async { Ok(()) })).await
}

/// POST a JSON body; the response status and JSON body.
pub async fn post_json(
    base: &str,
    path: &str,
    body: &Value,
    token: Option<&str>,
) -> Result<(u16, Value), String> {
    let body = body.to_string();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        authority(base)?,
        body.len()
    );
    send(base, head, |_| Box::pin(async { Ok(()) })).await
}

/// POST `size` bytes of generated UTF-8 text as the `file` field of a
/// multipart form, written in 64 KiB chunks as the server reads them.
pub async fn upload_text(
    base: &str,
    path: &str,
    token: &str,
    size: usize,
) -> Result<(u16, Value), String> {
    const BOUNDARY: &str = "tandembenchboundary7d93a1";
    let preamble = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.txt\"\r\nContent-Type: text/plain\r\n\r\n"
    );
    let epilogue = format!("\r\n--{BOUNDARY}--\r\n");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        authority(base)?,
        preamble.len() + size + epilogue.len()
    );
    send(base, head, move |conn| {
        Box::pin(async move {
            let line: Vec<u8> = b"the quick brown fox jumps over the lazy dog 0123456789\n"
                .iter()
                .copied()
                .cycle()
                .take(64 * 1024)
                .collect();
            let w = |e: std::io::Error| format!("write: {e}");
            conn.write_all(preamble.as_bytes()).await.map_err(w)?;
            let mut left = size;
            while left > 0 {
                let n = left.min(line.len());
                conn.write_all(&line[..n]).await.map_err(w)?;
                left -= n;
            }
            conn.write_all(epilogue.as_bytes()).await.map_err(w)?;
            Ok(())
        })
    })
    .await
}
