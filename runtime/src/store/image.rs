//! Entries in memory: the bytes an entry file holds, made without a file, and decoded without
//! one. What the cache keeps of small results, and hands to its background writer.

use std::io::{self, Cursor, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::compress::Compression;
use super::decode::Decoder;
use super::entry::{check, parse};
use super::format::{Header, has_arrays};
use super::read::Stored;
use super::write::{Meta, Out, entry};
use crate::error::ErrorKind;

/// An entry's bytes, whole, as its file would hold them.
pub(crate) type Image = Arc<[u8]>;

/// The entry of `value`, if it is at most `limit` bytes and holds no arrays or frames (whose
/// sections are read as views into a file, and are refused before they are encoded);
/// `Ok(None)` otherwise, for the caller to write the file itself, streamed.
///
/// # Errors
/// When `value` does not serialize.
pub(crate) fn image<T: ?Sized + Serialize>(
    value: &T,
    meta: &Meta,
    limit: usize,
) -> Result<Option<Image>, ErrorKind> {
    let mut out = Limited {
        bytes: Cursor::new(Vec::new()),
        limit,
    };
    match entry(&mut out, value, meta, Compression::None) {
        Ok(_) => {
            let bytes = out.bytes.into_inner();
            Ok((!has_arrays(&bytes)).then(|| bytes.into()))
        }
        Err(ErrorKind::Io(e)) if e.kind() == io::ErrorKind::FileTooLarge => Ok(None),
        Err(e) => Err(e),
    }
}

/// Verifies and decodes the entry `image`, which must hold no arrays.
pub(crate) fn decode_image<T>(image: &[u8], decode: Decoder<T>) -> Result<T, ErrorKind> {
    decode.decode_entry(&parse(image)?)
}

/// When the entry `image` was stored, as its header says.
pub(crate) fn created(image: &[u8]) -> SystemTime {
    Header::read(image).map_or(UNIX_EPOCH, |h| h.created)
}

/// What the entry `image` says of itself, as a file's header and size would; its last use is
/// its creation.
pub(crate) fn stored_image(image: &[u8]) -> Option<Stored> {
    let header = Header::read(image)?;
    Some(Stored {
        last_used: header.created,
        header,
        size: image.len() as u64,
    })
}

/// Whether the entry `image` holds a `T`, checked as a file's would be.
pub(crate) fn image_holds<T>(image: &[u8]) -> bool {
    check(image).is_ok_and(|entry| entry.expect_type::<T>().is_ok())
}

/// A buffer that refuses to grow past `limit`, and to hold sections, which an image never
/// does: a frame or an array ends the attempt before it is encoded, and is encoded once, by
/// the streamed write that follows.
struct Limited {
    bytes: Cursor<Vec<u8>>,
    limit: usize,
}

impl Out for &mut Limited {
    fn holds_sections(&self) -> bool {
        false
    }
}

impl Write for Limited {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.position() as usize + buf.len() > self.limit {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        self.bytes.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Limited {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.bytes.seek(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::decode::decoder_any;
    use crate::store::write::encode;
    use std::time::Duration;

    #[test]
    fn an_image_is_the_file_and_decodes() {
        let value = vec![1.5f64, 2.5];
        let meta = Meta {
            compute: Duration::from_millis(3),
            ..Meta::value(std::any::type_name::<Vec<f64>>())
        };
        let image = image(&value, &meta, 1 << 16).unwrap().unwrap();
        let file = encode(&value, meta.type_name, meta.compute, Compression::None).unwrap();
        assert_eq!(&image[..56], &file[..56], "all but the creation time");
        let back: Vec<f64> = decode_image(&image, decoder_any()).unwrap();
        assert_eq!(back, value);

        let mut damaged = image.to_vec();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(decode_image::<Vec<f64>>(&damaged, decoder_any()).is_err());
    }

    /// Counts its serializations.
    struct Counted<'a>(&'a std::cell::Cell<usize>);

    impl Serialize for Counted<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            self.0.set(self.0.get() + 1);
            serializer.serialize_unit()
        }
    }

    /// A miss tries the image first: a value that would be a section stops that attempt
    /// before it is encoded (a frame's IPC file), and nothing after it is serialized.
    fn no_image<T: Serialize>(value: &T) -> bool {
        image(value, &Meta::value("x"), 1 << 16).unwrap().is_none()
    }

    #[test]
    fn a_section_ends_the_image_before_it_is_encoded() {
        let count = std::cell::Cell::new(0);
        let array = crate::Array::from(vec![1.0f64; 10]);
        assert!(no_image(&(&array, Counted(&count))));
        assert_eq!(count.get(), 0);
        #[cfg(feature = "polars")]
        {
            use polars_core::prelude::*;
            let frame = crate::Frame::from(df!("x" => [1i64, 2]).unwrap());
            assert!(no_image(&(&frame, Counted(&count))));
            assert_eq!(count.get(), 0);
        }
        // The streamed write that follows keeps the array as a section.
        let value = (&array, Counted(&count));
        let file = encode(&value, "x", Duration::ZERO, Compression::None).unwrap();
        assert!(has_arrays(&file));
        assert_eq!(count.get(), 1);
    }

    #[test]
    fn large_values_and_arrays_make_no_image() {
        let meta = Meta::value("x");
        assert!(image(&vec![0u8; 1000], &meta, 500).unwrap().is_none());
        let array = crate::Array::from(vec![1.0f64; 10]);
        assert!(image(&array, &meta, 1 << 16).unwrap().is_none());
    }
}
