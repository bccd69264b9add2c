//! The cache layer, on the store: call sites and their keys, single flight, the environment's
//! switches, argument rendering, the size limit, eviction, and `Memory`.

mod bounds;
mod budget;
mod evict;
mod flight;
mod memory;
mod recent;
mod render;
mod site;
mod summary;
mod switches;
mod wrapped;
mod writer;

pub use crate::store::Summary;
pub use bounds::{
    CacheArg, CacheDir, RemoteStore, assert_arg, assert_output, dir_path, remote_enabled,
    typed_future,
};
pub use budget::CONFIG_FILE;
pub use evict::{Limits, Reduced};
pub use memory::Memory;
pub use recent::IN_MEMORY_ENV;
pub use render::{Args, Show, ViaDebug, ViaName};
pub use site::{Begin, CallKey, Mode, Pending, Site};
pub use switches::{CACHE_DIR_ENV, DEFAULT_CACHE_DIR, DISABLE_ENV, REFRESH_ENV, default_cache_dir};
pub use wrapped::Cached;
pub use writer::flush;
