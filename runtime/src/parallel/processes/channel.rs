//! What parent and worker exchange, at the level of bytes: `[len: u32][bytes]` frames, a
//! descriptor passed with a request frame (`SCM_RIGHTS` over the request socket), and files
//! in shared memory (the task counter, arrays), made so that a full or unwritable `TMPDIR` is
//! an error when they are made, never a `SIGBUS` when they are read.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Reads a `[len: u32][bytes]` frame into `buf`; `false` at the end of the stream.
pub(super) fn read_frame(from: &mut File, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0; 4];
    loop {
        match from.read(&mut len[..1]) {
            Ok(0) => return Ok(false),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    from.read_exact(&mut len[1..])?;
    read_body(from, &len, buf)?;
    Ok(true)
}

fn read_body(from: &mut File, len: &[u8; 4], buf: &mut Vec<u8>) -> io::Result<()> {
    let len = u32::from_le_bytes(*len) as usize;
    buf.clear();
    buf.resize(len, 0);
    from.read_exact(buf)
}

/// Writes `frame`, whose first four bytes are reserved for its length, in one call.
pub(super) fn write_frame(to: &mut File, frame: &mut [u8]) -> io::Result<()> {
    set_length(frame)?;
    to.write_all(frame)
}

/// Writes the length of `frame` in its first four bytes, reserved for it.
pub(super) fn set_length(frame: &mut [u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len() - 4)
        .map_err(|_| io::Error::other("a request or a reply of 4 GiB or more"))?;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Sends a request frame, its length set (see [`set_length`]), over a Unix socket, with `fd`
/// attached to its first bytes. The frame is not changed: a call's head goes to every worker
/// as it is.
pub(super) fn send_frame(to: &mut File, frame: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    let Some(fd) = fd else {
        return to.write_all(frame);
    };
    let mut control = Control::new();
    let mut part = libc::iovec {
        // Only read: `iovec` has one pointer type for sending and receiving.
        iov_base: frame.as_ptr().cast_mut().cast(),
        iov_len: frame.len(),
    };
    // SAFETY: `msghdr` is plain data; every pointer set below is valid for the call.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut part;
    message.msg_iovlen = 1;
    message.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: `CMSG_SPACE` computes a size.
    message.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as _;
    // SAFETY: the control buffer has room for one header and one descriptor (`Control`), and
    // `CMSG_FIRSTHDR` of a message with that room is that header.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<RawFd>(), fd);
    }
    let sent = loop {
        // SAFETY: `message` describes the frame and the descriptor, valid for the call.
        let sent = unsafe { libc::sendmsg(to.as_raw_fd(), &message, libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            break sent as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // A long frame goes in several parts; the descriptor went with the first.
    to.write_all(&frame[sent..])
}

/// Reads a request frame from the Unix socket, with the descriptor sent with it if any;
/// `None` at the end of the stream.
pub(super) fn receive_frame(
    from: &mut File,
    buf: &mut Vec<u8>,
) -> io::Result<Option<Option<OwnedFd>>> {
    let mut len = [0u8; 4];
    let mut control = Control::new();
    let mut part = libc::iovec {
        iov_base: len.as_mut_ptr().cast(),
        iov_len: len.len(),
    };
    // SAFETY: as in `send_frame`.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut part;
    message.msg_iovlen = 1;
    message.msg_control = control.0.as_mut_ptr().cast();
    message.msg_controllen = size_of::<Control>() as _;
    let got = loop {
        // SAFETY: `message` points at `len` and `control`, both live for the call.
        let got = unsafe { libc::recvmsg(from.as_raw_fd(), &mut message, libc::MSG_CMSG_CLOEXEC) };
        if got >= 0 {
            break got as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    if got == 0 {
        return Ok(None);
    }
    let mut fd = None;
    // SAFETY: the kernel filled `message`'s control part; each header it lists lies in it.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let raw = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<RawFd>());
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
    }
    from.read_exact(&mut len[got..])?;
    read_body(from, &len, buf)?;
    Ok(Some(fd))
}

/// Room for one `SCM_RIGHTS` header and descriptor, aligned as headers must be.
struct Control([u64; 4]);

impl Control {
    fn new() -> Self {
        // SAFETY: `CMSG_SPACE` computes a size.
        debug_assert!(unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as usize <= 32);
        Control([0; 4])
    }
}

/// A socket pair whose ends close on `exec`: requests go from the parent to a worker through
/// it, with the descriptors of shared arrays.
pub(super) fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let kind = libc::SOCK_STREAM;
    // SAFETY: `fds` has room for the two descriptors written.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are open, and owned by nothing else.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    close_on_exec(&pair.0)?;
    close_on_exec(&pair.1)?;
    Ok(pair)
}

/// A pipe whose ends close on `exec`: `(read, write)`. Made so in one call where the system
/// has one, so that a program another thread starts meanwhile gets neither end.
pub(super) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors written.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    // SAFETY: as above.
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let made = unsafe { libc::pipe(fds.as_mut_ptr()) };
    if made != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are open, and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    close_on_exec(&read)?;
    close_on_exec(&write)?;
    Ok((read, write))
}

fn close_on_exec(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: an open descriptor.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A file of shared memory holding what `fill` writes: on Linux an anonymous one
/// (`memfd_create`, outside `TMPDIR`), elsewhere or when that fails an unnamed temporary file.
/// Its bytes are written, never left sparse, so that a page the system cannot give fails here
/// with an error that says so, not later with `SIGBUS` when a map of it is read.
pub(super) fn shared_file(
    what: &str,
    mut fill: impl FnMut(&mut File) -> io::Result<()>,
) -> io::Result<File> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        // SAFETY: a name that is a C string; the flags are valid.
        let fd = unsafe { libc::memfd_create(c"joblet".as_ptr(), libc::MFD_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: a new descriptor, owned by nothing else.
            let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            return fill(&mut file)
                .map(|()| file)
                .map_err(|e| cannot(what, "memory", e));
        }
    }
    let mut file = tempfile::tempfile().map_err(|e| cannot(what, "TMPDIR", e))?;
    fill(&mut file).map_err(|e| cannot(what, "TMPDIR", e))?;
    Ok(file)
}

fn cannot(what: &str, place: &str, e: io::Error) -> io::Error {
    let dir = std::env::temp_dir();
    let place = match place {
        "TMPDIR" => format!("a temporary file in {}", dir.display()),
        _ => "shared memory".to_owned(),
    };
    io::Error::new(e.kind(), format!("cannot write {what} to {place}: {e}"))
}
