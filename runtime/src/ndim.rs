//! `NdArray<T>`: an n-dimensional array for the `ndarray` feature, a shape over an [`Array`],
//! so that it loads as an `ndarray::ArrayView` without a copy.

use ndarray::{ArrayD, ArrayViewD, Dimension, IxDyn};
use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};

use bytemuck::Pod;

use crate::Array;

/// An n-dimensional array in row-major (C) order whose elements load without copying: a shape
/// over an [`Array`]. Convert an `ndarray::Array` into it to store or cache it, and read it
/// back through [`NdArray::view`], an `ndarray::ArrayView` into the file's memory map.
///
/// ```
/// use joblet_runtime::{NdArray, dump, load};
/// use ndarray::{Array2, Ix2};
///
/// let path = std::env::temp_dir().join("joblet-doc-ndarray.jbl");
/// let grid = Array2::from_shape_fn((500, 300), |(i, j)| (i * j) as f64);
/// dump(&NdArray::from(grid.clone()), &path)?;
///
/// let back: NdArray<f64> = load(&path)?;
/// let view = back.view().into_dimensionality::<Ix2>().unwrap();
/// assert_eq!(view, grid);
/// assert_eq!(view[[499, 299]], 499.0 * 299.0);
/// # Ok::<(), joblet_runtime::Error>(())
/// ```
///
/// `ndarray::Array` values themselves also go through [`dump`](crate::dump) and
/// [`load`](crate::load), by ndarray's serde support, element by element.
#[derive(Clone)]
pub struct NdArray<T> {
    shape: Vec<usize>,
    data: Array<T>,
}

impl<T: Pod> NdArray<T> {
    /// An array of `shape` over `data`, in row-major order; `None` when the shape does not
    /// hold exactly `data.len()` elements, or is too large for ndarray to index.
    ///
    /// ```
    /// use joblet_runtime::{Array, NdArray};
    ///
    /// assert!(NdArray::from_shape(vec![2, 3], Array::from(vec![0u8; 6])).is_some());
    /// assert!(NdArray::from_shape(vec![2, 3], Array::from(vec![0u8; 5])).is_none());
    /// assert!(NdArray::from_shape(vec![0, usize::MAX], Array::<u8>::new()).is_none());
    /// ```
    pub fn from_shape(shape: Vec<usize>, data: Array<T>) -> Option<Self> {
        // ndarray's own check, which also refuses shapes it cannot index (an axis of zero
        // beside others whose product overflows), so that `view` never fails.
        ArrayViewD::from_shape(IxDyn(&shape), &data).ok()?;
        Some(NdArray { shape, data })
    }

    /// The length of each axis.
    ///
    /// ```
    /// let a = joblet_runtime::NdArray::from(ndarray::Array3::<f32>::zeros((2, 3, 4)));
    /// assert_eq!(a.shape(), &[2, 3, 4]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements, in row-major order.
    ///
    /// ```
    /// let a = joblet_runtime::NdArray::from(ndarray::arr2(&[[1, 2], [3, 4]]));
    /// assert_eq!(a.data().as_slice(), &[1, 2, 3, 4]);
    /// ```
    pub fn data(&self) -> &Array<T> {
        &self.data
    }

    /// A view of the elements with their shape, without copying them.
    ///
    /// ```
    /// let a = joblet_runtime::NdArray::from(ndarray::arr2(&[[1, 2], [3, 4]]));
    /// assert_eq!(a.view().sum(), 10);
    /// ```
    pub fn view(&self) -> ArrayViewD<'_, T> {
        ArrayViewD::from_shape(IxDyn(&self.shape), &self.data)
            .expect("the shape holds exactly the elements: checked when made")
    }

    /// An owned `ndarray` array, copying the elements if they are a view into a file or
    /// shared with a clone.
    ///
    /// ```
    /// let a = joblet_runtime::NdArray::from(ndarray::arr1(&[1.0, 2.0]));
    /// assert_eq!(a.into_owned(), ndarray::arr1(&[1.0, 2.0]).into_dyn());
    /// ```
    pub fn into_owned(self) -> ArrayD<T> {
        ArrayD::from_shape_vec(IxDyn(&self.shape), self.data.into_vec())
            .expect("the shape holds exactly the elements: checked when made")
    }
}

/// Takes the elements without copying them when the array is in standard (row-major) layout.
impl<T: Pod, D: Dimension> From<ndarray::Array<T, D>> for NdArray<T> {
    fn from(a: ndarray::Array<T, D>) -> Self {
        let shape = a.shape().to_vec();
        let count = a.len();
        let elements = if a.is_standard_layout() {
            match a.into_raw_vec_and_offset() {
                (v, Some(0)) if v.len() == count => v,
                (v, Some(start)) => v[start..start + count].to_vec(),
                (_, None) => Vec::new(),
            }
        } else {
            a.iter().copied().collect()
        };
        NdArray {
            shape,
            data: Array::from(elements),
        }
    }
}

impl<T: Pod + PartialEq> PartialEq for NdArray<T> {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.data == other.data
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for NdArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

impl<T: Pod> Serialize for NdArray<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.shape, &self.data).serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for NdArray<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (shape, data) = <(Vec<usize>, Array<T>)>::deserialize(deserializer)?;
        let len = data.len();
        NdArray::from_shape(shape, data)
            .ok_or_else(|| de::Error::invalid_length(len, &"as many elements as the shape holds"))
    }
}
