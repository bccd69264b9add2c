//! `SeriesValue`: a Polars `Series` as a cached argument or result, or a `dump`/`load` value,
//! kept as the one column of a [`Frame`], whose hashing and storing it shares.

use std::fmt;

use polars_core::prelude::Series;
use serde::de::{self, Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};

use super::Frame;

/// A Polars [`Series`] as a cached argument or result, or a value for [`dump`]/[`load`]:
/// hashed from its Arrow buffers, stored as an Arrow IPC file and mapped back, as a
/// [`Frame`] is (see there for the dtypes and the integrity checks).
///
/// It is kept as a frame of one column, and its key is that frame's: its name, dtype, null
/// pattern and values, whatever its chunks. So a series and a one-column frame of the same
/// data have the same key; they never meet, since a cached function's arguments have fixed
/// types, and an entry's stored type tells a series from a frame (loading one as the other
/// is an error).
///
/// It derefs to the [`Series`] (not mutably: build a new one and convert it);
/// [`SeriesValue::into_inner`] gives it back.
///
/// ```
/// use joblet_runtime::polars_core::prelude::*;
/// use joblet_runtime::{SeriesValue, dump, load};
///
/// let s = Series::new("score".into(), [0.5f64, 1.5, 2.5]);
/// let path = std::env::temp_dir().join("joblet-doc-series.jbl");
/// dump(&SeriesValue::from(s.clone()), &path)?;
///
/// let back: SeriesValue = load(&path)?; // mapped from the file
/// assert!(back.is_mapped());
/// assert_eq!(*back, s);
/// assert_eq!(back.f64()?.sum(), Some(4.5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`dump`]: crate::dump
/// [`load`]: crate::load
#[derive(Clone, PartialEq)]
pub struct SeriesValue {
    /// Always exactly one column.
    frame: Frame,
}

impl SeriesValue {
    /// The series, as a Polars `Series`.
    ///
    /// ```
    /// use joblet_runtime::polars_core::prelude::*;
    /// let s = Series::new("x".into(), [1u32, 2]);
    /// assert_eq!(joblet_runtime::SeriesValue::from(s.clone()).into_inner(), s);
    /// ```
    pub fn into_inner(self) -> Series {
        let mut columns = self.frame.into_inner().into_columns();
        columns
            .pop()
            .expect("a `SeriesValue` holds one column")
            .take_materialized_series()
    }

    /// Whether the values are views of a file's memory map (a cache hit or a [`load`] of an
    /// uncompressed file), as [`Frame::is_mapped`] says.
    ///
    /// [`load`]: crate::load
    ///
    /// ```
    /// use joblet_runtime::polars_core::prelude::*;
    /// let s = Series::new("x".into(), [1i32]);
    /// assert!(!joblet_runtime::SeriesValue::from(s).is_mapped());
    /// ```
    pub fn is_mapped(&self) -> bool {
        self.frame.is_mapped()
    }

    /// Checks the file the values were mapped from against the hash stored when it was
    /// written, reading every page, as [`Frame::verify`] does. A series that was not mapped
    /// passes.
    ///
    /// ```
    /// use joblet_runtime::polars_core::prelude::*;
    /// use joblet_runtime::SeriesValue;
    /// let path = std::env::temp_dir().join("joblet-doc-series-verify.jbl");
    /// joblet_runtime::dump(&SeriesValue::from(Series::new("x".into(), [1.5f64; 1000])), &path)?;
    /// let back: SeriesValue = joblet_runtime::load(&path)?;
    /// assert!(back.verify());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify(&self) -> bool {
        self.frame.verify()
    }
}

impl From<Series> for SeriesValue {
    fn from(series: Series) -> Self {
        SeriesValue {
            frame: Frame::from(series.into_frame()),
        }
    }
}

impl From<SeriesValue> for Series {
    fn from(series: SeriesValue) -> Self {
        series.into_inner()
    }
}

impl std::ops::Deref for SeriesValue {
    type Target = Series;
    fn deref(&self) -> &Series {
        self.frame.columns()[0].as_materialized_series()
    }
}

impl AsRef<Series> for SeriesValue {
    fn as_ref(&self) -> &Series {
        self
    }
}

/// The length, name and dtype, not the values, as a [`Frame`] shows.
impl fmt::Debug for SeriesValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SeriesValue({}: {} {})",
            self.len(),
            self.name(),
            self.dtype()
        )
    }
}

impl Serialize for SeriesValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.frame.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SeriesValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let frame = Frame::deserialize(deserializer)?;
        if frame.width() != 1 {
            return Err(de::Error::custom(format_args!(
                "a series was stored as a frame of {} columns",
                frame.width()
            )));
        }
        Ok(SeriesValue { frame })
    }
}
