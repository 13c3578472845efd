//! A tiny OCI image layout written by hand (one gzip layer holding one file, a config, a
//! manifest, `index.json`), so the end-to-end tests push an image they built themselves with no
//! image-building tool.

use std::io;
use std::path::Path;

/// What [`write_layout`] wrote: the digests a registry round trip must preserve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// `sha256:…` of the manifest: the image's digest.
    pub manifest_digest: String,
    /// `sha256:…` of the config blob.
    pub config_digest: String,
    /// `sha256:…` of the (compressed) layer blob.
    pub layer_digest: String,
}

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Writes an OCI image layout in `dir` (created if missing) holding one image tagged `tag`,
/// whose only layer holds the file `hello.txt` with `content`. Use `oci:<dir>:<tag>` with skopeo.
pub fn write_layout(dir: &Path, tag: &str, content: &[u8]) -> io::Result<Image> {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |bytes: &[u8]| -> io::Result<(String, usize)> {
        let d = digest(bytes);
        let hex = d.trim_start_matches("sha256:");
        std::fs::write(blobs.join(hex), bytes)?;
        Ok((d, bytes.len()))
    };

    let tar = tar_one_file("hello.txt", content);
    let (layer_digest, layer_size) = put(&gzip_stored(&tar))?;
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(&tar)]},
        "history": [{"created_by": "acr-tests e2e (written by hand)"}],
    });
    let (config_digest, config_size) = put(config.to_string().as_bytes())?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": layer_size,
        }],
    });
    let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes())?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string())?;
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(Image {
        manifest_digest,
        config_digest,
        layer_digest,
    })
}

/// The manifest digest tagged `tag` in the OCI layout at `dir` (as skopeo wrote it).
pub fn layout_digest(dir: &Path, tag: &str) -> io::Result<String> {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)
        .map_err(io::Error::other)?;
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .and_then(|m| m["digest"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| io::Error::other(format!("no manifest tagged {tag} in {}", dir.display())))
}

/// Whether the layout at `dir` holds the blob `digest`.
pub fn has_blob(dir: &Path, digest: &str) -> bool {
    dir.join("blobs")
        .join("sha256")
        .join(digest.trim_start_matches("sha256:"))
        .is_file()
}

/// A POSIX ustar archive with one regular file.
fn tar_one_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let mut field = |offset: usize, value: &[u8]| {
        header[offset..offset + value.len()].copy_from_slice(value);
    };
    field(0, name.as_bytes());
    field(100, b"0000644\0");
    field(108, b"0000000\0");
    field(116, b"0000000\0");
    field(124, format!("{:011o}\0", content.len()).as_bytes());
    field(136, b"00000000000\0");
    field(156, b"0");
    field(257, b"ustar\0");
    field(263, b"00");
    // The checksum is computed with its own field as spaces.
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());

    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    // End of archive: two zero blocks.
    out.resize(out.len() + 1024, 0);
    out
}

/// A gzip stream of `data` in stored (uncompressed) deflate blocks: valid gzip, no compressor.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    // Magic, deflate, no flags, no mtime, no extra flags, OS unknown.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(usize::from(u16::MAX)).collect()
    };
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        out.push(u8::from(i == last));
        // `chunks(u16::MAX)` makes every chunk fit in 16 bits.
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    // ISIZE is the length modulo 2^32 by definition.
    out.extend_from_slice(&((data.len() as u64 & 0xffff_ffff) as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE 802.3, reflected), bit by bit: the inputs here are a few kilobytes.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn layer_is_a_gzip_tar_that_the_system_tools_read() {
        let dir = tempfile::tempdir().unwrap();
        let image = write_layout(dir.path(), "1", b"hello, registry\n").unwrap();
        assert_eq!(
            layout_digest(dir.path(), "1").unwrap(),
            image.manifest_digest
        );
        assert!(has_blob(dir.path(), &image.config_digest));
        let layer = dir
            .path()
            .join("blobs/sha256")
            .join(image.layer_digest.trim_start_matches("sha256:"));
        let out = Command::new("tar")
            .arg("-xzOf")
            .arg(&layer)
            .arg("hello.txt")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"hello, registry\n");
    }
}
