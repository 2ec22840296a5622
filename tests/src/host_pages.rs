//! A tiny HTTP server for the host pages of browser tests: the shop's pages that embed
//! the widget, on a port of their own, so another origin than the hub's.

use anyhow::Result;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A tiny HTTP server for host pages, on its own port (so another origin than the hub).
pub struct HostPages {
    pub addr: SocketAddr,
    pages: Arc<Mutex<HashMap<String, String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostPages {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostPages {
    pub async fn start() -> Result<HostPages> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let pages: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let served = pages.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let pages = served.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let request = String::from_utf8_lossy(&request);
                    let path = request.split_whitespace().nth(1).unwrap_or("/");
                    let path = path.split('?').next().unwrap_or("/").to_owned();
                    let page = pages
                        .lock()
                        .ok()
                        .and_then(|pages| pages.get(&path).cloned());
                    let response = match page {
                        Some(html) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                             Cache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                            html.len()
                        ),
                        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_owned(),
                    };
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Ok(HostPages { addr, pages, task })
    }

    /// The page's origin, to allow on the site.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `html` at `path` and returns its URL.
    pub fn page(&self, path: &str, html: String) -> String {
        if let Ok(mut pages) = self.pages.lock() {
            pages.insert(path.to_owned(), html);
        }
        format!("{}{path}", self.origin())
    }
}
