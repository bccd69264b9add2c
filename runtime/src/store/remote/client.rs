//! The connection to an object store: the `object_store` crate's S3 client, the runtime its
//! requests run on, the bound on how long a call waits for one, and whether the store is
//! answering at all (a store that fails is left alone for a while, and warned of once).

use std::future::Future;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{ClientConfigKey, RetryConfig};

/// How long a request waits by default before the store is taken as down.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a listing (`joblet report`, `Memory::entries`), which no call waits for, may wait
/// for a page of names or a header.
pub(super) const LISTING_TIMEOUT: Duration = Duration::from_secs(60);

/// A store that failed is asked again after this long, then after twice as long, up to
/// [`LONGEST_PAUSE`]; the local tier serves meanwhile.
const FIRST_PAUSE: Duration = Duration::from_secs(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(300);

/// What a request came to, besides its answer.
#[derive(Debug)]
pub(super) enum Failure {
    /// No such object (or no such bucket, for a read): a plain miss.
    Absent,
    /// The object exists, and the request was to create it only if it did not.
    Exists,
    /// The store did not answer, or refused: unreachable, too slow, wrong credentials,
    /// throttled. The text says which.
    Down(String),
}

impl From<object_store::Error> for Failure {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => Failure::Absent,
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => Failure::Exists,
            e => Failure::Down(chain(&e)),
        }
    }
}

/// An error and its sources, as one line: `object_store`'s own message often leaves the
/// cause (a refused connection, a TLS failure) to its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The client of one bucket, and the runtime its requests run on.
pub(super) struct Client {
    pub store: Arc<dyn ObjectStore>,
    /// The same store for listings, which wait longer for an answer.
    pub listing: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    pub timeout: Duration,
    health: Health,
}

impl Client {
    /// The client of `bucket`, set up from the standard `AWS_*` environment variables, whose
    /// requests wait at most `timeout` for a connection or for the next bytes of an answer.
    pub(super) fn new(url: &str, bucket: &str, timeout: Duration) -> Result<Client, String> {
        Ok(Client {
            store: s3(bucket, timeout, timeout)?,
            listing: s3(bucket, timeout, timeout.max(LISTING_TIMEOUT))?,
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("joblet-remote")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the object store's runtime: {e}"))?,
            timeout,
            health: Health::new(url),
        })
    }

    /// Whether the store may be asked now: it has not failed lately.
    pub(super) fn up(&self) -> bool {
        self.health.up()
    }

    /// Runs `request` on the client's runtime and waits for its answer at most `limit`. The
    /// caller's thread only waits, so that this works from any thread, an async one too.
    pub(super) fn run<T, F>(&self, limit: Duration, request: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, object_store::Error>> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let task = self.runtime.spawn(async move {
            let _ = tx.send(request.await);
        });
        match rx.recv_timeout(limit) {
            Ok(answer) => answer.map_err(Failure::from),
            Err(_) => {
                task.abort();
                Err(Failure::Down(format!("no answer within {limit:?}")))
            }
        }
    }

    /// Starts `work` on the client's runtime, for a caller that takes its output as it comes.
    pub(super) fn spawn<F>(&self, work: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.runtime.spawn(work)
    }

    /// Notes what a request came to: a store that answered is up (again); one that did not is
    /// left alone for a while, with a warning the first time. `doing` says what was asked.
    pub(super) fn note<T>(&self, doing: &str, outcome: &Result<T, Failure>) {
        match outcome {
            Err(Failure::Down(why)) => self.health.failed(doing, why),
            _ => self.health.answered(),
        }
    }

    /// Notes a failure that a request's answer does not say (a store refused as missing).
    pub(super) fn failed(&self, doing: &str, why: &str) {
        self.health.failed(doing, why);
    }
}

/// The client of `bucket`, set up from the standard `AWS_*` environment variables, whose
/// requests wait at most `connect` for a connection and `read` for the next bytes of an
/// answer.
fn s3(bucket: &str, connect: Duration, read: Duration) -> Result<Arc<dyn ObjectStore>, String> {
    // Set key by key: the client options that `from_env` read (`AWS_ALLOW_HTTP`, proxies,
    // certificates) stay as they are.
    let ms = |t: Duration| format!("{}ms", t.as_millis());
    let client = AmazonS3ConfigKey::Client;
    let retry = RetryConfig {
        max_retries: 1,
        retry_timeout: connect,
        ..RetryConfig::default()
    };
    let store = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_config(client(ClientConfigKey::ConnectTimeout), ms(connect))
        .with_config(client(ClientConfigKey::ReadTimeout), ms(read))
        // A large object takes as long as it takes; a stalled one is cut by the read timeout.
        .with_config(client(ClientConfigKey::Timeout), "1h")
        .with_retry(retry)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

/// Whether a store answers, as its last requests found.
struct Health {
    url: String,
    state: Mutex<State>,
}

struct State {
    /// When the store may be asked again, after a failure.
    retry_at: Option<Instant>,
    /// How long the next failure leaves it alone.
    pause: Duration,
    /// Whether the warning was given; it is given once a process.
    warned: bool,
}

impl Health {
    fn new(url: &str) -> Self {
        Health {
            url: url.to_owned(),
            state: Mutex::new(State {
                retry_at: None,
                pause: FIRST_PAUSE,
                warned: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn up(&self) -> bool {
        self.lock().retry_at.is_none_or(|at| Instant::now() >= at)
    }

    fn failed(&self, doing: &str, why: &str) {
        let mut state = self.lock();
        let pause = state.pause;
        state.retry_at = Some(Instant::now() + pause);
        state.pause = (pause * 2).min(LONGEST_PAUSE);
        if state.warned {
            tracing::debug!(cache = %self.url, error = why, "object store failed {doing}");
        } else {
            state.warned = true;
            tracing::warn!(
                cache = %self.url,
                error = why,
                "object store failed {doing}: results are computed and kept in the local tier until it answers; asked again in {}s (warned once)",
                pause.as_secs()
            );
        }
    }

    fn answered(&self) {
        let mut state = self.lock();
        state.pause = FIRST_PAUSE;
        if state.retry_at.take().is_some() {
            tracing::info!(cache = %self.url, "object store answers again");
        }
    }
}
