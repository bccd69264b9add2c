//! A call's arguments as a short line of text, for the entry's metadata, `joblet ls` and the
//! `[Memory]` lines: `Debug` where the type has it, the type's name where it does not, each
//! argument cut short so that a large one costs no more to render than a small one.

use std::fmt::{self, Debug, Write};

use crate::store::truncate;

/// At most this many bytes of one argument's rendering are kept.
const ARG_LIMIT: usize = 80;

/// At most this many bytes of the whole rendering are kept.
const ALL_LIMIT: usize = 400;

/// The rendering of a call's arguments, being built: `2, [1.0, 2.0, 3.0], _`.
#[derive(Debug, Default)]
pub struct Args {
    text: String,
    /// Arguments rendered so far.
    count: usize,
}

impl Args {
    /// Starts the next argument.
    fn next(&mut self) {
        if self.count > 0 {
            self.text.push_str(", ");
        }
        self.count += 1;
    }

    /// Renders one argument with its `Debug` form, cut short.
    pub fn debug<T: ?Sized + Debug>(&mut self, value: &T) {
        self.next();
        let room = ALL_LIMIT.saturating_sub(self.text.len()).min(ARG_LIMIT);
        let mut out = Bounded {
            text: &mut self.text,
            room,
            cut: false,
        };
        // A `Debug` impl stops at the first error, which `Bounded` returns once full, so a
        // large value is never rendered whole.
        let _ = write!(out, "{value:?}");
        if out.cut {
            self.text.push('…');
        }
    }

    /// Renders an argument whose type has no `Debug` form: its type's name.
    pub fn unnamed<T: ?Sized>(&mut self) {
        let name = short_type_name(std::any::type_name::<T>());
        self.debug(&format_args!("<{name}>"));
    }

    /// Marks an argument left out of the key (`ignore`): neither hashed nor rendered.
    pub fn ignored(&mut self) {
        self.next();
        self.text.push('_');
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

/// A `fmt::Write` that keeps at most `room` bytes, cut at a character boundary.
struct Bounded<'a> {
    text: &'a mut String,
    room: usize,
    cut: bool,
}

impl Write for Bounded<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let kept = truncate(s, self.room);
        self.text.push_str(kept);
        self.room -= kept.len();
        if kept.len() < s.len() {
            self.cut = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}

/// `alloc::vec::Vec<my_crate::Point>` becomes `Vec<Point>`.
fn short_type_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut word = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            out.push_str(word.rsplit("::").next().unwrap_or(""));
            word.clear();
            out.push(c);
        }
    }
    out.push_str(word.rsplit("::").next().unwrap_or(""));
    out
}

/// One argument to render; the macro picks how by autoref specialization, `Debug` when the
/// type has it: `(&Show(&arg)).render(args)`.
pub struct Show<'a, T: ?Sized>(pub &'a T);

/// Renders with `Debug`; picked first where the type has it.
pub trait ViaDebug {
    /// Renders the argument into `args`.
    fn render(&self, args: &mut Args);
}

impl<T: ?Sized + Debug> ViaDebug for Show<'_, T> {
    #[inline]
    fn render(&self, args: &mut Args) {
        args.debug(self.0);
    }
}

/// Renders the type's name; picked where the type has no `Debug`.
pub trait ViaName {
    /// Renders the argument into `args`.
    fn render(&self, args: &mut Args);
}

impl<T: ?Sized> ViaName for &Show<'_, T> {
    #[inline]
    fn render(&self, args: &mut Args) {
        args.unnamed::<T>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Opaque;

    // The borrows are what autoref specialization works by.
    #[allow(clippy::needless_borrow)]
    #[test]
    fn debug_where_there_is_one_else_the_type_name() {
        let mut args = Args::default();
        #[allow(unused_imports)]
        use {ViaDebug as _, ViaName as _};
        (&Show(&2u64)).render(&mut args);
        (&Show("a\"b")).render(&mut args);
        (&Show(&Opaque)).render(&mut args);
        (&Show(&vec![Opaque])).render(&mut args);
        args.ignored();
        assert_eq!(args.as_str(), r#"2, "a\"b", <Opaque>, <Vec<Opaque>>, _"#);
    }

    /// A value whose `Debug` writes a million pieces, counting how many it was let write.
    struct Long(std::cell::Cell<usize>);

    impl Debug for Long {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for _ in 0..1_000_000 {
                self.0.set(self.0.get() + 1);
                f.write_str("piece, ")?;
            }
            Ok(())
        }
    }

    #[test]
    fn rendering_stops_once_the_room_is_used() {
        let long = Long(std::cell::Cell::new(0));
        let mut args = Args::default();
        args.debug(&long);
        assert!(args.as_str().starts_with("piece, piece"));
        // 80 bytes hold 11 pieces and a part: the twelfth write fails, and `Debug` stops.
        assert_eq!(long.0.get(), 12);
    }

    #[test]
    fn large_arguments_are_cut_short_without_being_rendered_whole() {
        let mut args = Args::default();
        args.debug(&vec![1.5f64; if cfg!(miri) { 10_000 } else { 1_000_000 }]);
        let text = args.as_str();
        assert!(text.starts_with("[1.5, 1.5"), "{text}");
        assert!(text.ends_with('…'));
        assert!(text.len() <= ARG_LIMIT + '…'.len_utf8());
        for _ in 0..20 {
            args.debug(&"é".repeat(100));
        }
        // Past the limit, each argument adds only its separator and the mark of a cut.
        let past = 20 * (", ".len() + '…'.len_utf8());
        assert!(args.as_str().len() <= ALL_LIMIT + past, "{}", args.as_str());
        assert_eq!(truncate("éé", 3), "é");
    }
}
