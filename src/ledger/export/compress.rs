//! One file of a chunked bundle written as it is produced, optionally
//! compressed (docs/audit-format.md section 8.4), with what the manifest's
//! `files` says of it: lines of its content, SHA-256 and length of its
//! bytes as stored. Nothing of the file is kept in memory but the
//! compressor's window and one write buffer.

use super::ExportError;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// How the chunk files of a `govgate-bundle/3` bundle are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// As written.
    None,
    /// gzip (RFC 1952), `.gz`.
    Gzip,
    /// zstd (RFC 8878), `.zst`.
    Zstd,
}

impl Compression {
    /// `none`, `gzip` or `zstd`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(Self::None),
            "gzip" => Some(Self::Gzip),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The manifest's `compression`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }

    /// What a chunk file's name ends in.
    pub fn extension(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gzip => ".gz",
            Self::Zstd => ".zst",
        }
    }
}

/// What the manifest's `files` says of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// LF-terminated lines of the content (decompressed).
    pub(crate) lines: u64,
    /// SHA-256 of the bytes as stored, hex.
    pub(crate) sha256: String,
    /// Length of the bytes as stored.
    pub(crate) bytes: u64,
}

/// The file's bytes on their way to disk, hashed and counted.
struct Hashing {
    out: BufWriter<File>,
    sha: Sha256,
    bytes: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.out.write(buf)?;
        self.sha.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

enum Encoder {
    Plain(Hashing),
    Gzip(flate2::write::GzEncoder<Hashing>),
    Zstd(zstd::stream::write::Encoder<'static, Hashing>),
}

/// zstd's fastest regular level: on bundle lines about the ratio of its
/// default level 3 (118 against 135 MB for 859 MB of entries) at twice its
/// speed, and several times gzip's.
const ZSTD_LEVEL: i32 = 1;

/// zstd worker threads per chunk file: one per core.
fn compress_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |cores| cores.get() as u32)
}

/// One chunk file being written.
pub(crate) struct ChunkFile {
    path: PathBuf,
    encoder: Encoder,
    lines: u64,
}

impl ChunkFile {
    /// Creates `path` (which must not exist), stored as `compression` says.
    pub(crate) fn create(path: &Path, compression: Compression) -> Result<Self, ExportError> {
        let fail = |source| ExportError::Write {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(fail)?;
        let sink = Hashing {
            out: BufWriter::with_capacity(256 << 10, file),
            sha: Sha256::new(),
            bytes: 0,
        };
        let encoder = match compression {
            Compression::None => Encoder::Plain(sink),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::default(),
            )),
            Compression::Zstd => {
                let mut encoder =
                    zstd::stream::write::Encoder::new(sink, ZSTD_LEVEL).map_err(fail)?;
                // libzstd's own workers compress while this thread reads
                // the store (joined when the encoder is dropped).
                encoder.multithread(compress_workers()).map_err(fail)?;
                Encoder::Zstd(encoder)
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            encoder,
            lines: 0,
        })
    }

    fn fail(&self, source: std::io::Error) -> ExportError {
        ExportError::Write {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Appends content (whole lines).
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.lines += memchr::memchr_iter(b'\n', bytes).count() as u64;
        let written = match &mut self.encoder {
            Encoder::Plain(out) => out.write_all(bytes),
            Encoder::Gzip(out) => out.write_all(bytes),
            Encoder::Zstd(out) => out.write_all(bytes),
        };
        written.map_err(|err| self.fail(err))
    }

    /// Ends the compressed stream and flushes the file; what the manifest
    /// says of it.
    pub(crate) fn finish(self) -> Result<Stored, ExportError> {
        let fail = |source| ExportError::Write {
            path: self.path.display().to_string(),
            source,
        };
        let mut sink = match self.encoder {
            Encoder::Plain(sink) => sink,
            Encoder::Gzip(out) => out.finish().map_err(fail)?,
            Encoder::Zstd(out) => out.finish().map_err(fail)?,
        };
        sink.flush().map_err(fail)?;
        Ok(Stored {
            lines: self.lines,
            sha256: crate::ledger::entry::hex(&sink.sha.finalize()),
            bytes: sink.bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn each_compression_round_trips_and_is_described_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let content = b"{\"seq\":0}\n{\"seq\":1}\n".repeat(500);
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let path = dir
                .path()
                .join(format!("f.jsonl{}", compression.extension()));
            let mut file = ChunkFile::create(&path, compression).unwrap();
            for piece in content.chunks(7) {
                file.append(piece).unwrap();
            }
            let stored = file.finish().unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(stored.lines, 1000);
            assert_eq!(stored.bytes, bytes.len() as u64);
            assert_eq!(
                stored.sha256,
                crate::ledger::entry::hex(&Sha256::digest(&bytes))
            );
            let mut back = Vec::new();
            match compression {
                Compression::None => back = bytes.clone(),
                Compression::Gzip => {
                    flate2::read::GzDecoder::new(&bytes[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Compression::Zstd => back = zstd::stream::decode_all(&bytes[..]).unwrap(),
            }
            assert_eq!(back, content, "{compression:?}");
            if compression != Compression::None {
                assert!(
                    bytes.len() * 5 < content.len(),
                    "{compression:?} compresses"
                );
            }
            assert_eq!(Compression::parse(compression.name()), Some(compression));
        }
        assert_eq!(Compression::parse("lz4"), None);
    }
}
