//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromedriver`, which
//! `scripts/browser-deps` installs): the web pages tested as a buyer sees them. One
//! `chromedriver` per [`Driver`], one browser (its own profile) per [`Browser`].

use anyhow::Context;
use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Where Debian puts them.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long a page may take to show what a step waits for.
const PATIENCE: Duration = Duration::from_secs(30);

/// A running `chromedriver`, stopped when dropped.
pub struct Driver {
    child: Child,
    url: String,
    /// The browsers' profiles, removed with the driver.
    profiles: PathBuf,
}

impl Driver {
    /// Starts `chromedriver` on a free port and waits until it answers.
    pub async fn start() -> anyhow::Result<Self> {
        anyhow::ensure!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "{CHROMEDRIVER} and {CHROMIUM} are needed: run scripts/browser-deps"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let profiles = std::env::temp_dir().join(format!("ticketing-browsers-{}", uuid::Uuid::new_v4()));
        let driver = Self { child, url: format!("http://127.0.0.1:{port}"), profiles };
        let status = format!("{}/status", driver.url);
        for _ in 0..200 {
            if reqwest::get(&status).await.is_ok_and(|r| r.status().is_success()) {
                return Ok(driver);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("chromedriver did not answer at {status}")
    }

    /// A new headless browser with a profile of its own (its own session storage).
    pub async fn browser(&self, name: &str) -> anyhow::Result<Browser> {
        let profile = self.profiles.join(name);
        std::fs::create_dir_all(&profile)?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                // Without the background-networking flags Chromium keeps trying hosts this
                // machine cannot reach.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-quic", "--no-first-run", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .with_context(|| format!("opening a browser session at {}", self.url))?;
        Ok(Browser { client })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profiles);
    }
}

/// One browser: a buyer or an organizer at their screen.
pub struct Browser {
    pub client: Client,
}

impl Browser {
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client.goto(url).await.with_context(|| format!("opening {url}"))
    }

    /// The element `css` finds, once it is on the page.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("waiting for `{css}`"))
    }

    /// Clicks what `css` finds.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css).await?.click().await.with_context(|| format!("clicking `{css}`"))
    }

    /// Types `text` into the field `css` finds.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let field = self.find(css).await?;
        field.clear().await?;
        field.send_keys(text).await.with_context(|| format!("typing into `{css}`"))
    }

    /// Waits until the text of what `css` finds is `text`.
    pub async fn until_text(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                last = el.text().await.unwrap_or_default();
                if last.trim() == text {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("`{css}` never read {text:?} (last {last:?})")
    }

    /// The text of what `css` finds now.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.find(css).await?.text().await?.trim().to_owned())
    }

    /// Writes a PNG of the page as it is to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let png = self.client.screenshot().await?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    pub async fn close(self) -> anyhow::Result<()> {
        Ok(self.client.close().await?)
    }
}
