//! A SQLite VFS shim that gathers a connection's write-ahead-log appends into one write per
//! commit.
//!
//! SQLite writes each WAL frame with two `pwrite`s, its 24-byte header and then its page, so a
//! commit of n pages costs 2n system calls before its `fsync`. The VFS registered here wraps the
//! default unix VFS and, for WAL files only, keeps contiguous writes in memory until SQLite next
//! does anything else with that file (syncs it, reads it, asks its size, truncates or closes
//! it), then writes them with one call. Data files, journals and the shared-memory index pass
//! through untouched, and so does every other method.
//!
//! # Why readers never miss a frame
//! A commit becomes visible to other connections when SQLite publishes it in the WAL index, and
//! with `synchronous = FULL` (or `EXTRA`) it syncs the WAL before that: the sync writes out the
//! gathered frames first. With `NORMAL` or `OFF` there is no such sync, and a reader could be told
//! of a frame that is still in this process's memory, so **a connection opened with this VFS must
//! keep `synchronous = FULL`** (the caller sets it; a VFS cannot see pragmas). On a device without
//! `SQLITE_IOCAP_POWERSAFE_OVERWRITE` SQLite pads a commit to a sector boundary and writes past its
//! sync point; there this VFS passes WAL writes straight through. A crash loses gathered bytes
//! exactly as it loses writes the kernel has not synced: their commit was never acknowledged.

use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name to open a connection with (`Connection::open_with_flags_and_vfs`).
pub const VFS_NAME: &CStr = c"triggerline-wal-buffer";

/// The most bytes one write to the file may carry: the unix VFS masks a write's length to 17
/// bits (`seekAndWriteFd`), so a longer one would come back short, as a full disk. It is 31
/// frames of 4 KiB pages, about what a busy group commit writes; a larger commit is written
/// in parts of this size.
const FLUSH_AT: usize = 0x1_ffff;

/// Registers the VFS (once per process; later calls return the first result). It is not made
/// the default: only connections opened with [`VFS_NAME`] use it.
///
/// Errors: SQLite's, when the default VFS is not one of SQLite's unix VFSes (the only ones this
/// wraps) or registration fails.
pub fn register() -> rusqlite::Result<()> {
    static REGISTERED: OnceLock<Result<(), c_int>> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        // SAFETY: `sqlite3_vfs_find(NULL)` returns the default VFS, a static object SQLite
        // never frees; the copy made from it is leaked, so it lives as long as the process, as
        // `sqlite3_vfs_register` requires.
        unsafe {
            let rc = ffi::sqlite3_initialize();
            if rc != ffi::SQLITE_OK {
                return Err(rc);
            }
            let parent = ffi::sqlite3_vfs_find(ptr::null());
            if parent.is_null()
                || !CStr::from_ptr((*parent).zName)
                    .to_bytes()
                    .starts_with(b"unix")
            {
                return Err(ffi::SQLITE_ERROR);
            }
            // Every method but `xOpen` is the parent's own: SQLite passes them this VFS, and
            // the unix VFSes read nothing from that pointer but `mxPathname`, which the copy
            // keeps. `xOpen` is handed the parent itself (it reads `pAppData`). Other VFSes
            // (Windows') read more, hence the check above.
            let mut vfs: ffi::sqlite3_vfs = ptr::read(parent);
            vfs.szOsFile = real_offset() as c_int + (*parent).szOsFile;
            vfs.zName = VFS_NAME.as_ptr();
            vfs.pAppData = parent.cast();
            vfs.pNext = ptr::null_mut();
            vfs.xOpen = Some(open);
            let rc = ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0);
            if rc == ffi::SQLITE_OK {
                Ok(())
            } else {
                Err(rc)
            }
        }
    });
    registered.map_err(|rc| rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None))
}

/// What SQLite allocates for a file of this VFS: this header, then the parent's file.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    /// The parent's file, inside the same allocation, right after this header.
    real: *mut ffi::sqlite3_file,
    /// For a WAL file, the writes gathered so far; null for every other file.
    gathered: *mut Gathered,
}

#[derive(Debug, Default)]
struct Gathered {
    /// File offset of `bytes[0]`.
    start: i64,
    bytes: Vec<u8>,
}

/// Where the parent's file starts in a [`File`]: after the header, 8-byte aligned.
const fn real_offset() -> usize {
    size_of::<File>().div_ceil(8) * 8
}

/// The method table of every file this VFS opens (version 3, as the unix VFS's): WAL-aware
/// `xWrite` and the calls that must see the file complete; the rest forward.
static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite hands `xOpen` an allocation of this VFS's `szOsFile` bytes, which holds a
    // `File` and then the parent's file; `pAppData` is the parent VFS (see `register`).
    unsafe {
        let parent: *mut ffi::sqlite3_vfs = (*vfs).pAppData.cast();
        let this = file.cast::<File>();
        let real = file
            .cast::<u8>()
            .add(real_offset())
            .cast::<ffi::sqlite3_file>();
        (*this).base.pMethods = ptr::null();
        (*this).real = real;
        (*this).gathered = ptr::null_mut();
        let Some(parent_open) = (*parent).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        let rc = parent_open(parent, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK || (*real).pMethods.is_null() {
            // SQLite calls no method of a file whose `pMethods` is null, `xClose` included.
            return rc;
        }
        if flags & ffi::SQLITE_OPEN_WAL != 0 && powersafe_overwrite(real) {
            (*this).gathered = Box::into_raw(Box::default());
        }
        (*this).base.pMethods = &METHODS;
        ffi::SQLITE_OK
    }
}

/// Whether the device lets SQLite sync a commit without padding it past its sync point.
///
/// # Safety
/// `real` is an open file of the parent VFS.
unsafe fn powersafe_overwrite(real: *mut ffi::sqlite3_file) -> bool {
    // SAFETY: as the caller promises.
    unsafe {
        let characteristics = match (*(*real).pMethods).xDeviceCharacteristics {
            Some(f) => f(real),
            None => 0,
        };
        characteristics & ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0
    }
}

/// The parent's file and method table of `file`.
///
/// # Safety
/// `file` is a file this VFS opened successfully and has not closed.
unsafe fn real(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    // SAFETY: as the caller promises; the parent's method tables are statics.
    unsafe {
        let real = (*file.cast::<File>()).real;
        (real, &*(*real).pMethods)
    }
}

/// Writes out what `file` has gathered, if anything. On a failure the gathered bytes are
/// dropped: SQLite then fails the commit they belong to and never publishes its frames.
///
/// # Safety
/// As for [`real`].
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as the caller promises; `gathered` is null or the box `open` made.
    unsafe {
        let gathered = (*file.cast::<File>()).gathered;
        if gathered.is_null() || (*gathered).bytes.is_empty() {
            return ffi::SQLITE_OK;
        }
        let (real, methods) = real(file);
        let Some(write) = methods.xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let g = &mut *gathered;
        #[cfg(test)]
        tests::count(&tests::WRITES_OUT);
        // SQLite's amounts are `c_int`; `FLUSH_AT` keeps the buffer far below that.
        let rc = write(
            real,
            g.bytes.as_ptr().cast(),
            g.bytes.len() as c_int,
            g.start,
        );
        g.bytes.clear();
        rc
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: SQLite calls this on a file this VFS opened, with `amount` readable bytes at `buf`.
    unsafe {
        let gathered = (*file.cast::<File>()).gathered;
        let (real, methods) = real(file);
        let Some(real_write) = methods.xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        if gathered.is_null() {
            return real_write(real, buf, amount, offset);
        }
        #[cfg(test)]
        tests::count(&tests::WRITES_IN);
        let g = &mut *gathered;
        let len = usize::try_from(amount).unwrap_or(0);
        let contiguous = g.bytes.is_empty() || offset == g.start + g.bytes.len() as i64;
        if !contiguous || g.bytes.len() + len > FLUSH_AT {
            // Order matters: what was gathered goes to the file before this write does.
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if len > FLUSH_AT {
            #[cfg(test)]
            tests::count(&tests::WRITES_OUT);
            return real_write(real, buf, amount, offset);
        }
        if g.bytes.is_empty() {
            g.start = offset;
        }
        g.bytes
            .extend_from_slice(std::slice::from_raw_parts(buf.cast::<u8>(), len));
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file once; the box is freed here and the pointer cleared.
    unsafe {
        let flushed = flush(file);
        let (real, methods) = real(file);
        let closed = match methods.xClose {
            Some(f) => f(real),
            None => ffi::SQLITE_OK,
        };
        let this = file.cast::<File>();
        if !(*this).gathered.is_null() {
            drop(Box::from_raw((*this).gathered));
            (*this).gathered = ptr::null_mut();
        }
        (*this).base.pMethods = ptr::null();
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

/// Forwards a method that must see every write made before it: flush, then the parent's.
macro_rules! flushing {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*), $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: SQLite calls this on a file this VFS opened and has not closed.
            unsafe {
                let rc = flush(file);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                let (real, methods) = real(file);
                match methods.$method {
                    Some(f) => f(real $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

/// Forwards a method that does not look at the file's contents.
macro_rules! forward {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty, $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: SQLite calls this on a file this VFS opened and has not closed.
            unsafe {
                let (real, methods) = real(file);
                match methods.$method {
                    Some(f) => f(real $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

flushing!(read, xRead, (buf: *mut c_void, amount: c_int, offset: i64), ffi::SQLITE_IOERR_READ);
flushing!(truncate, xTruncate, (size: i64), ffi::SQLITE_IOERR_TRUNCATE);
flushing!(sync, xSync, (flags: c_int), ffi::SQLITE_IOERR_FSYNC);
flushing!(file_size, xFileSize, (size: *mut i64), ffi::SQLITE_IOERR_FSTAT);
flushing!(file_control, xFileControl, (op: c_int, arg: *mut c_void), ffi::SQLITE_NOTFOUND);
// No mapping (`*out` null) is always a valid answer to `xFetch`.
flushing!(fetch, xFetch, (offset: i64, amount: c_int, out: *mut *mut c_void), {
    *out = ptr::null_mut();
    ffi::SQLITE_OK
});
forward!(lock, xLock, (level: c_int) -> c_int, ffi::SQLITE_OK);
forward!(unlock, xUnlock, (level: c_int) -> c_int, ffi::SQLITE_OK);
forward!(check_reserved_lock, xCheckReservedLock, (out: *mut c_int) -> c_int, ffi::SQLITE_OK);
forward!(sector_size, xSectorSize, () -> c_int, 4096);
forward!(device_characteristics, xDeviceCharacteristics, () -> c_int, 0);
forward!(shm_map, xShmMap, (region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int, ffi::SQLITE_IOERR_SHMMAP);
forward!(shm_lock, xShmLock, (offset: c_int, n: c_int, flags: c_int) -> c_int, ffi::SQLITE_IOERR_SHMLOCK);
forward!(shm_unmap, xShmUnmap, (delete: c_int) -> c_int, ffi::SQLITE_OK);
forward!(unfetch, xUnfetch, (offset: i64, page: *mut c_void) -> c_int, ffi::SQLITE_OK);

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: SQLite calls this on a file this VFS opened and has not closed.
    unsafe {
        let (real, methods) = real(file);
        if let Some(f) = methods.xShmBarrier {
            f(real);
        }
    }
}

#[cfg(test)]
mod tests;
