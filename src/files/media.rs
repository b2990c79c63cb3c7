//! What a file really is, from its bytes: the type from magic numbers and,
//! for audio and video, the duration measured from the container. Reads
//! through `Read + Seek`, never the whole file into memory.
//!
//! The bytes are untrusted: every offset is computed with checked
//! arithmetic, positions only move forward, and each walk over chunks,
//! boxes, elements or frames has a step budget, so the work is bounded by a
//! small multiple of the file's length whatever it contains
//! (`tests/probe_fuzz.rs` checks both).

use std::io::{self, Read, Seek, SeekFrom};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Image,
    Document,
    Text,
    Audio,
    Video,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub mime: &'static str,
    pub class: Class,
    /// Seconds, for audio and video whose container tells.
    pub duration: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("this file type is not allowed")]
    Unsupported,
    #[error("io: {0}")]
    Io(#[from] io::Error),
}

fn fixed(mime: &'static str, class: Class) -> Result<Probe, ProbeError> {
    Ok(Probe {
        mime,
        class,
        duration: None,
    })
}

/// Identifies the file; anything not on the allow-list is `Unsupported`.
pub fn probe<R: Read + Seek>(r: &mut R, len: u64) -> Result<Probe, ProbeError> {
    let mut head = [0u8; 64];
    r.seek(SeekFrom::Start(0))?;
    let n = read_up_to(r, &mut head)?;
    let h = &head[..n];
    if h.starts_with(b"\x89PNG\r\n\x1a\n") {
        return fixed("image/png", Class::Image);
    }
    if h.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return fixed("image/jpeg", Class::Image);
    }
    if h.starts_with(b"GIF87a") || h.starts_with(b"GIF89a") {
        return fixed("image/gif", Class::Image);
    }
    if h.len() >= 12 && &h[..4] == b"RIFF" && &h[8..12] == b"WEBP" {
        return fixed("image/webp", Class::Image);
    }
    if h.starts_with(b"%PDF-") {
        return fixed("application/pdf", Class::Document);
    }
    if h.len() >= 12 && &h[..4] == b"RIFF" && &h[8..12] == b"WAVE" {
        return wav(r, len);
    }
    if h.starts_with(b"OggS") {
        return ogg(r, len);
    }
    if h.starts_with(b"fLaC") {
        return flac(r);
    }
    if h.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return matroska(r, len);
    }
    if h.len() >= 12 && &h[4..8] == b"ftyp" {
        return mp4(r, len);
    }
    if (h.starts_with(b"ID3") || (h.len() >= 2 && h[0] == 0xFF && h[1] & 0xE0 == 0xE0))
        && let Some(p) = mpeg_audio(r, len)?
    {
        return Ok(p);
    }
    if is_text(r)? {
        return fixed("text/plain", Class::Text);
    }
    Err(ProbeError::Unsupported)
}

/// Most RIFF chunks a WAV walk looks at.
const MAX_CHUNKS: u32 = 10_000;
/// Most ISO BMFF boxes an MP4 walk visits.
const MAX_BOXES: u32 = 100_000;
/// Most EBML elements a Matroska walk reads (a 5-minute WebM voice note
/// has about 15,000).
const MAX_ELEMENTS: u32 = 1_000_000;
/// Most MPEG/ADTS frames walked; past it the duration is extrapolated.
const MAX_FRAMES: u32 = 200_000;

/// A buffered reader that knows its position and seeks forward inside its
/// buffer instead of discarding it (`BufReader::seek` always discards: one
/// refill per element made a file of tiny elements cost seconds).
struct Forward<R> {
    inner: io::BufReader<R>,
    pos: u64,
}

impl<R: Read + Seek> Forward<R> {
    fn new(mut inner: R, pos: u64) -> io::Result<Self> {
        inner.seek(SeekFrom::Start(pos))?;
        Ok(Forward {
            inner: io::BufReader::with_capacity(16 * 1024, inner),
            pos,
        })
    }

    fn goto(&mut self, target: u64) -> io::Result<()> {
        match i64::try_from(i128::from(target) - i128::from(self.pos)) {
            Ok(0) => {}
            Ok(delta) => self.inner.seek_relative(delta)?,
            Err(_) => {
                self.inner.seek(SeekFrom::Start(target))?;
            }
        }
        self.pos = target;
        Ok(())
    }
}

impl<R: Read> Read for Forward<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn u16le(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn u32le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
fn u32be(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn u64be(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

/// RIFF/WAVE: the `data` chunk's size over the `fmt ` chunk's byte rate.
fn wav<R: Read + Seek>(r: &mut R, len: u64) -> Result<Probe, ProbeError> {
    let mut pos = 12u64;
    let mut byte_rate = None;
    let mut data_len = None;
    let mut r = Forward::new(r, pos)?;
    let mut steps = 0;
    while pos + 8 <= len && (byte_rate.is_none() || data_len.is_none()) && steps < MAX_CHUNKS {
        steps += 1;
        r.goto(pos)?;
        let mut hdr = [0u8; 8];
        if read_up_to(&mut r, &mut hdr)? < 8 {
            break;
        }
        let size = u32le(&hdr[4..]) as u64;
        match &hdr[..4] {
            b"fmt " => {
                let mut fmt = [0u8; 16];
                if read_up_to(&mut r, &mut fmt)? == 16 {
                    byte_rate = Some(u32le(&fmt[8..12]) as u64);
                }
            }
            b"data" => data_len = Some(size.min(len.saturating_sub(pos + 8))),
            _ => {}
        }
        pos += 8 + size + (size & 1);
    }
    let duration = match (byte_rate, data_len) {
        (Some(rate), Some(data)) if rate > 0 => Some(data as f64 / rate as f64),
        _ => None,
    };
    Ok(Probe {
        mime: "audio/wav",
        class: Class::Audio,
        duration,
    })
}

/// Ogg: the codec from the first packet, the duration from the last page's
/// granule position.
fn ogg<R: Read + Seek>(r: &mut R, len: u64) -> Result<Probe, ProbeError> {
    let mut first = [0u8; 27 + 255 + 64];
    r.seek(SeekFrom::Start(0))?;
    let n = read_up_to(r, &mut first)?;
    if n < 28 {
        return Err(ProbeError::Unsupported);
    }
    let segments = first[26] as usize;
    let body = 27 + segments;
    if n < body + 20 {
        return Err(ProbeError::Unsupported);
    }
    let packet = &first[body..n];
    let (mime, class, rate, pre_skip) = if packet.starts_with(b"OpusHead") {
        (
            "audio/ogg",
            Class::Audio,
            48_000u64,
            u16le(&packet[10..12]) as u64,
        )
    } else if packet.starts_with(b"\x01vorbis") {
        ("audio/ogg", Class::Audio, u32le(&packet[12..16]) as u64, 0)
    } else if packet.starts_with(b"\x7fFLAC") {
        // Mapping header (13 bytes), "fLaC", then STREAMINFO: its sample
        // rate is in bytes 27..30 of the packet.
        if packet.len() < 30 {
            return Err(ProbeError::Unsupported);
        }
        let sr =
            ((packet[27] as u64) << 12) | ((packet[28] as u64) << 4) | ((packet[29] as u64) >> 4);
        ("audio/ogg", Class::Audio, sr, 0)
    } else if packet.starts_with(b"\x80theora") {
        ("video/ogg", Class::Video, 0, 0)
    } else {
        return Err(ProbeError::Unsupported);
    };
    // The last page's granule: scan the tail for the last "OggS".
    let tail_start = len.saturating_sub(64 * 1024);
    r.seek(SeekFrom::Start(tail_start))?;
    let mut tail = Vec::with_capacity((len - tail_start) as usize);
    r.take(64 * 1024).read_to_end(&mut tail)?;
    let granule = tail
        .windows(4)
        .rposition(|w| w == b"OggS")
        .filter(|&i| i + 14 <= tail.len())
        .map(|i| u64::from_le_bytes(tail[i + 6..i + 14].try_into().expect("8 bytes")));
    let duration = match granule {
        Some(g) if rate > 0 && g != u64::MAX => {
            Some(g.saturating_sub(pre_skip) as f64 / rate as f64)
        }
        _ => None,
    };
    Ok(Probe {
        mime,
        class,
        duration,
    })
}

/// FLAC: total samples over sample rate, from STREAMINFO.
fn flac<R: Read + Seek>(r: &mut R) -> Result<Probe, ProbeError> {
    let mut b = [0u8; 4 + 4 + 34];
    r.seek(SeekFrom::Start(0))?;
    let duration = if read_up_to(r, &mut b)? == b.len() && b[4] & 0x7F == 0 {
        let si = &b[8..];
        let rate = ((si[10] as u64) << 12) | ((si[11] as u64) << 4) | ((si[12] as u64) >> 4);
        let total = (((si[13] & 0x0F) as u64) << 32) | u32be(&si[14..18]) as u64;
        (rate > 0 && total > 0).then(|| total as f64 / rate as f64)
    } else {
        None
    };
    Ok(Probe {
        mime: "audio/flac",
        class: Class::Audio,
        duration,
    })
}

/// MPEG audio (MP3) or ADTS AAC: walks the frames and adds up their samples.
fn mpeg_audio<R: Read + Seek>(r: &mut R, len: u64) -> Result<Option<Probe>, ProbeError> {
    let mut pos = 0u64;
    let mut id3 = [0u8; 10];
    r.seek(SeekFrom::Start(0))?;
    if read_up_to(r, &mut id3)? == 10 && &id3[..3] == b"ID3" {
        let size = id3[6..10]
            .iter()
            .fold(0u64, |acc, b| (acc << 7) | (*b as u64 & 0x7F));
        pos = 10 + size + if id3[5] & 0x10 != 0 { 10 } else { 0 };
    }
    let mut seconds = 0f64;
    let mut frames = 0u32;
    let mut mime = "audio/mpeg";
    let first = pos;
    let mut reader = Forward::new(&mut *r, pos)?;
    let mut hdr = [0u8; 7];
    while pos.saturating_add(4) <= len {
        if frames == MAX_FRAMES {
            // Frames this small are a mistake or a trick: extrapolate from
            // what was walked rather than walk on.
            seconds *= (len - first) as f64 / (pos - first).max(1) as f64;
            pos = len;
            break;
        }
        if read_up_to(&mut reader, &mut hdr)? < 4 {
            break;
        }
        let Some((frame_len, samples, rate, is_aac)) = frame_header(&hdr) else {
            break;
        };
        if frames == 0 && is_aac {
            mime = "audio/aac";
        }
        frames += 1;
        seconds += samples as f64 / rate as f64;
        pos += frame_len as u64;
        reader.goto(pos)?;
    }
    if frames < 2 && !(frames == 1 && pos >= len) {
        return Ok(None);
    }
    Ok(Some(Probe {
        mime,
        class: Class::Audio,
        duration: Some(seconds),
    }))
}

/// (frame length, samples, sample rate, is ADTS) of an MPEG audio or ADTS header.
fn frame_header(h: &[u8; 7]) -> Option<(u32, u32, u32, bool)> {
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 0x03; // 0: MPEG2.5, 2: MPEG2, 3: MPEG1
    let layer = (h[1] >> 1) & 0x03; // 1: III, 2: II, 3: I; 0: ADTS when version bits say MPEG-4/2
    if layer == 0 {
        // ADTS: 0xFFF sync, layer 00.
        if h[1] & 0xF6 != 0xF0 {
            return None;
        }
        const RATES: [u32; 13] = [
            96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
        ];
        let rate = *RATES.get(((h[2] >> 2) & 0x0F) as usize)?;
        let frame_len =
            (((h[3] & 0x03) as u32) << 11) | ((h[4] as u32) << 3) | ((h[5] as u32) >> 5);
        let blocks = (h[6] & 0x03) as u32 + 1;
        return (frame_len >= 7).then_some((frame_len, 1024 * blocks, rate, true));
    }
    if version == 1 {
        return None;
    }
    let bitrate_index = (h[2] >> 4) as usize;
    let rate_index = ((h[2] >> 2) & 0x03) as usize;
    if bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let padding = ((h[2] >> 1) & 0x01) as u32;
    const V1: [[u32; 16]; 3] = [
        [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 0,
        ], // I
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 0,
        ], // II
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0,
        ], // III
    ];
    const V2: [[u32; 16]; 3] = [
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 0,
        ],
        [
            0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0,
        ],
        [
            0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0,
        ],
    ];
    let layer_idx = (3 - layer) as usize; // 0: I, 1: II, 2: III
    let kbps = if version == 3 {
        V1[layer_idx][bitrate_index]
    } else {
        V2[layer_idx][bitrate_index]
    };
    let base_rate = [44100, 48000, 32000][rate_index];
    let rate = match version {
        3 => base_rate,
        2 => base_rate / 2,
        _ => base_rate / 4,
    };
    let bitrate = kbps * 1000;
    let (frame_len, samples) = match layer_idx {
        0 => ((12 * bitrate / rate + padding) * 4, 384),
        1 => (144 * bitrate / rate + padding, 1152),
        _ if version == 3 => (144 * bitrate / rate + padding, 1152),
        _ => (72 * bitrate / rate + padding, 576),
    };
    (frame_len >= 4).then_some((frame_len, samples, rate, false))
}

/// ISO BMFF (MP4 / M4A): track handlers tell audio from video; `mvhd` gives
/// the duration.
fn mp4<R: Read + Seek>(r: &mut R, len: u64) -> Result<Probe, ProbeError> {
    let mut handlers = Vec::new();
    let mut duration = None;
    let mut budget = MAX_BOXES;
    walk_boxes(r, 0, len, 0, &mut budget, &mut |r, kind, start, size| {
        match &kind {
            b"mvhd" => {
                let mut b = [0u8; 32];
                r.seek(SeekFrom::Start(start))?;
                let n = read_up_to(r, &mut b)?;
                if n >= 20 && b[0] == 0 {
                    let (scale, dur) = (u32be(&b[12..16]), u32be(&b[16..20]));
                    if scale > 0 {
                        duration = Some(dur as f64 / scale as f64);
                    }
                } else if n >= 32 && b[0] == 1 {
                    let (scale, dur) = (u32be(&b[20..24]), u64be(&b[24..32]));
                    if scale > 0 {
                        duration = Some(dur as f64 / scale as f64);
                    }
                }
            }
            b"hdlr" if size >= 12 && handlers.len() < 64 => {
                let mut b = [0u8; 12];
                r.seek(SeekFrom::Start(start))?;
                if read_up_to(r, &mut b)? == 12 {
                    handlers.push([b[8], b[9], b[10], b[11]]);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    let (mime, class) = if handlers.iter().any(|h| h == b"vide") {
        ("video/mp4", Class::Video)
    } else if handlers.iter().any(|h| h == b"soun") {
        ("audio/mp4", Class::Audio)
    } else {
        return Err(ProbeError::Unsupported);
    };
    Ok(Probe {
        mime,
        class,
        duration,
    })
}

type BoxVisitor<'a, R> = dyn FnMut(&mut R, [u8; 4], u64, u64) -> io::Result<()> + 'a;

/// Visits boxes in [start, end); descends into the containers on the path
/// to `mvhd` and `hdlr`. The visitor gets (reader, type, payload start, payload size).
/// Every box visited spends one of `budget`.
fn walk_boxes<R: Read + Seek>(
    r: &mut R,
    mut pos: u64,
    end: u64,
    depth: u32,
    budget: &mut u32,
    visit: &mut BoxVisitor<'_, R>,
) -> io::Result<()> {
    if depth > 8 {
        return Ok(());
    }
    while pos.saturating_add(8) <= end && *budget > 0 {
        *budget -= 1;
        r.seek(SeekFrom::Start(pos))?;
        let mut h = [0u8; 16];
        let n = read_up_to(r, &mut h)?;
        if n < 8 {
            break;
        }
        let kind = [h[4], h[5], h[6], h[7]];
        let (size, header) = match u32be(&h[..4]) {
            0 => (end - pos, 8),
            1 if n >= 16 => (u64be(&h[8..16]), 16),
            s => (s as u64, 8),
        };
        // A 64-bit size near 2^64 must not wrap the position back to 0.
        let next = match pos.checked_add(size) {
            Some(next) if size >= header && next <= end => next,
            _ => break,
        };
        let (payload, payload_len) = (pos + header, size - header);
        visit(r, kind, payload, payload_len)?;
        if matches!(&kind, b"moov" | b"trak" | b"mdia") {
            walk_boxes(r, payload, next, depth + 1, budget, visit)?;
        }
        pos = next;
    }
    Ok(())
}

/// Matroska / WebM: track types tell audio from video; the duration is the
/// `Info` element's, or (as MediaRecorder writes none) the last block's time.
fn matroska<R: Read + Seek>(r: &mut R, len: u64) -> Result<Probe, ProbeError> {
    const EBML: u64 = 0x1A45DFA3;
    const DOCTYPE: u64 = 0x4282;
    const SEGMENT: u64 = 0x18538067;
    const INFO: u64 = 0x1549A966;
    const TIMESCALE: u64 = 0x2AD7B1;
    const DURATION: u64 = 0x4489;
    const TRACKS: u64 = 0x1654AE6B;
    const TRACK_ENTRY: u64 = 0xAE;
    const TRACK_TYPE: u64 = 0x83;
    const CLUSTER: u64 = 0x1F43B675;
    const TIMECODE: u64 = 0xE7;
    const BLOCK_GROUP: u64 = 0xA0;
    const BLOCK: u64 = 0xA1;
    const SIMPLE_BLOCK: u64 = 0xA3;

    let mut reader = Forward::new(&mut *r, 0)?;
    let mut pos = 0u64;
    let mut steps = 0u32;
    let mut webm = false;
    let mut scale = 1_000_000u64;
    let mut info_duration: Option<f64> = None;
    let (mut audio, mut video) = (false, false);
    let mut cluster_tc = 0u64;
    let mut last_tc = 0u64;
    let mut blocks = 0u64;
    // Each element moves `pos` forward by at least two bytes (id and size).
    while pos < len && steps < MAX_ELEMENTS {
        steps += 1;
        let Some((id, id_len)) = read_vint(&mut reader, true)? else {
            break;
        };
        let Some((size, size_len)) = read_vint(&mut reader, false)? else {
            break;
        };
        let data = pos + id_len + size_len;
        let unknown = size == u64::MAX;
        match id {
            // Containers: step inside.
            EBML | SEGMENT | INFO | TRACKS | TRACK_ENTRY | CLUSTER | BLOCK_GROUP => {
                pos = data;
                continue;
            }
            _ if unknown => break,
            DOCTYPE => webm = read_bytes(&mut reader, size, 16)? == b"webm",
            TIMESCALE => scale = read_uint(&mut reader, size)?.max(1),
            DURATION => info_duration = read_float(&mut reader, size)?,
            TRACK_TYPE => match read_uint(&mut reader, size)? {
                1 => video = true,
                2 => audio = true,
                _ => {}
            },
            TIMECODE => cluster_tc = read_uint(&mut reader, size)?,
            SIMPLE_BLOCK | BLOCK => {
                // track number (vint), then a signed 16-bit relative time.
                let mut b = [0u8; 11];
                let n = read_up_to(&mut reader, &mut b[..(size.min(11) as usize)])?;
                let track_len = (b[0].leading_zeros() + 1) as usize;
                if n >= track_len + 2 {
                    let rel = i16::from_be_bytes([b[track_len], b[track_len + 1]]);
                    let t = (cluster_tc as i64 + rel as i64).max(0) as u64;
                    last_tc = last_tc.max(t);
                    blocks += 1;
                }
            }
            _ => {}
        }
        pos = data.saturating_add(size);
        if pos >= len {
            break;
        }
        reader.goto(pos)?;
    }
    let (mime, class) = match (video, audio, webm) {
        (true, _, true) => ("video/webm", Class::Video),
        (true, _, false) => ("video/x-matroska", Class::Video),
        (false, true, true) => ("audio/webm", Class::Audio),
        (false, true, false) => ("audio/x-matroska", Class::Audio),
        _ => return Err(ProbeError::Unsupported),
    };
    let ns = scale as f64;
    let duration = match info_duration {
        Some(d) if d > 0.0 => Some(d * ns / 1e9),
        _ if blocks > 0 => Some(last_tc as f64 * ns / 1e9),
        _ => None,
    };
    Ok(Probe {
        mime,
        class,
        duration,
    })
}

/// An EBML variable-length integer: (value, length). For ids the marker
/// bit is kept; for sizes it is dropped and all-ones means "unknown".
fn read_vint<R: Read>(r: &mut R, keep_marker: bool) -> io::Result<Option<(u64, u64)>> {
    let mut first = [0u8; 1];
    if read_up_to(r, &mut first)? == 0 {
        return Ok(None);
    }
    let len = first[0].leading_zeros() as usize + 1;
    if len > 8 {
        return Ok(None);
    }
    let mut rest = [0u8; 7];
    if read_up_to(r, &mut rest[..len - 1])? < len - 1 {
        return Ok(None);
    }
    let mut v = if keep_marker {
        first[0] as u64
    } else {
        (first[0] as u64) & ((1u64 << (8 - len)) - 1)
    };
    for b in &rest[..len - 1] {
        v = (v << 8) | *b as u64;
    }
    if !keep_marker && v == (1u64 << (7 * len)) - 1 {
        return Ok(Some((u64::MAX, len as u64)));
    }
    Ok(Some((v, len as u64)))
}

fn read_bytes<R: Read>(r: &mut R, size: u64, max: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; (size as usize).min(max)];
    let n = read_up_to(r, &mut v)?;
    v.truncate(n);
    Ok(v)
}

fn read_uint<R: Read>(r: &mut R, size: u64) -> io::Result<u64> {
    Ok(read_bytes(r, size, 8)?
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | *b as u64))
}

fn read_float<R: Read>(r: &mut R, size: u64) -> io::Result<Option<f64>> {
    let b = read_bytes(r, size, 8)?;
    Ok(match b.len() {
        4 => Some(f32::from_be_bytes(b[..4].try_into().expect("4 bytes")) as f64),
        8 => Some(f64::from_be_bytes(b[..8].try_into().expect("8 bytes"))),
        _ => None,
    })
}

/// Plain text: valid UTF-8 with no NUL and few other control characters.
fn is_text<R: Read + Seek>(r: &mut R) -> io::Result<bool> {
    r.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut carry = 0usize;
    let mut total = 0u64;
    let mut controls = 0u64;
    loop {
        let n = r.read(&mut buf[carry..])?;
        if n == 0 {
            return Ok(carry == 0 && total > 0 && controls * 100 <= total);
        }
        let filled = carry + n;
        let valid = match std::str::from_utf8(&buf[..filled]) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => return Ok(false),
        };
        for &b in &buf[..valid] {
            if b == 0 {
                return Ok(false);
            }
            if b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0C) {
                controls += 1;
            }
        }
        total += valid as u64;
        buf.copy_within(valid..filled, 0);
        carry = filled - valid;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    fn run(bytes: &[u8]) -> Result<Probe, ProbeError> {
        probe(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    /// A PCM WAV of `seconds` at 8 kHz, 8-bit mono.
    pub fn wav_bytes(seconds: u32) -> Vec<u8> {
        let data = 8000 * seconds;
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes()); // PCM
        v.extend_from_slice(&1u16.to_le_bytes()); // mono
        v.extend_from_slice(&8000u32.to_le_bytes()); // sample rate
        v.extend_from_slice(&8000u32.to_le_bytes()); // byte rate
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&8u16.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data.to_le_bytes());
        v.resize(v.len() + data as usize, 128);
        v
    }

    #[test]
    fn images_documents_text() {
        assert_eq!(run(b"\x89PNG\r\n\x1a\n....").unwrap().mime, "image/png");
        assert_eq!(
            run(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]).unwrap().mime,
            "image/jpeg"
        );
        assert_eq!(run(b"GIF89a....").unwrap().mime, "image/gif");
        assert_eq!(run(b"RIFF\0\0\0\0WEBPVP8 ").unwrap().mime, "image/webp");
        assert_eq!(run(b"%PDF-1.7\n").unwrap().class, Class::Document);
        assert_eq!(run("héllo\nworld\n".as_bytes()).unwrap().mime, "text/plain");
        assert!(
            matches!(run(b"MZ\x90\0\x03\0\0\0"), Err(ProbeError::Unsupported)),
            "an .exe is refused"
        );
        assert!(matches!(
            run(b"\x7fELF\x02\x01\x01\0"),
            Err(ProbeError::Unsupported)
        ));
        assert!(
            matches!(run(&[0xC3, 0x28, 0x61]), Err(ProbeError::Unsupported)),
            "invalid UTF-8"
        );
        assert!(matches!(run(b""), Err(ProbeError::Unsupported)));
        assert!(matches!(
            run(b"PK\x03\x04zip"),
            Err(ProbeError::Unsupported)
        ));
    }

    #[test]
    fn text_split_across_reads() {
        let mut s = "a".repeat(16 * 1024 - 1);
        s.push('é'); // straddles the first read
        s.push_str("tail");
        assert_eq!(run(s.as_bytes()).unwrap().mime, "text/plain");
    }

    #[test]
    fn wav_duration() {
        let p = run(&wav_bytes(3)).unwrap();
        assert_eq!((p.mime, p.class), ("audio/wav", Class::Audio));
        assert!((p.duration.unwrap() - 3.0).abs() < 1e-9);
    }

    #[test]
    fn mp3_frames_add_up() {
        // MPEG-1 layer III, 128 kbps, 44.1 kHz: 417-byte frames of 1152 samples.
        let mut v = b"ID3\x03\0\0\0\0\0\x0a".to_vec();
        v.extend_from_slice(&[0u8; 10]);
        for _ in 0..100 {
            let mut f = vec![0xFF, 0xFB, 0x90, 0x00];
            f.resize(417, 0);
            v.extend_from_slice(&f);
        }
        let p = run(&v).unwrap();
        assert_eq!(p.mime, "audio/mpeg");
        assert!((p.duration.unwrap() - 100.0 * 1152.0 / 44100.0).abs() < 1e-6);
    }

    #[test]
    fn ogg_opus_duration_from_last_granule() {
        fn page(granule: u64, packet: &[u8]) -> Vec<u8> {
            let mut p = b"OggS\0\0".to_vec();
            p.extend_from_slice(&granule.to_le_bytes());
            p.extend_from_slice(&[0; 12]); // serial, sequence, crc
            p.push(1);
            p.push(packet.len() as u8);
            p.extend_from_slice(packet);
            p
        }
        let mut head = b"OpusHead\x01\x01".to_vec();
        head.extend_from_slice(&312u16.to_le_bytes());
        head.extend_from_slice(&[0; 7]);
        let mut v = page(0, &head);
        v.extend(page(0, b"OpusTags........"));
        v.extend(page(48_000 * 7 + 312, &[0u8; 50]));
        let p = run(&v).unwrap();
        assert_eq!((p.mime, p.class), ("audio/ogg", Class::Audio));
        assert!((p.duration.unwrap() - 7.0).abs() < 1e-9);
    }

    fn ebml(id: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        v.extend_from_slice(&[0x01, 0, 0, 0, 0, 0, 0, 0]); // 8-byte size
        let n = body.len() as u64;
        let l = v.len();
        v[l - 7..].copy_from_slice(&n.to_be_bytes()[1..]);
        v.extend_from_slice(body);
        v
    }

    /// A WebM like MediaRecorder writes: unknown-size segment and clusters,
    /// no duration, one audio (or video) track, blocks every 20 ms.
    pub fn webm_bytes(track_type: u8, seconds: u32) -> Vec<u8> {
        let mut v = ebml(&[0x1A, 0x45, 0xDF, 0xA3], &ebml(&[0x42, 0x82], b"webm"));
        v.extend_from_slice(&[
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        v.extend(ebml(
            &[0x15, 0x49, 0xA9, 0x66],
            &ebml(&[0x2A, 0xD7, 0xB1], &[0x0F, 0x42, 0x40]),
        ));
        v.extend(ebml(
            &[0x16, 0x54, 0xAE, 0x6B],
            &ebml(&[0xAE], &ebml(&[0x83], &[track_type])),
        ));
        for c in 0..seconds {
            v.extend_from_slice(&[
                0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            ]);
            v.extend(ebml(&[0xE7], &(c as u64 * 1000).to_be_bytes()));
            for k in 0..50i16 {
                let mut block = vec![0x81];
                block.extend_from_slice(&(k * 20).to_be_bytes());
                block.extend_from_slice(&[0x80, 1, 2, 3]);
                v.extend(ebml(&[0xA3], &block));
            }
        }
        v
    }

    #[test]
    fn webm_audio_from_media_recorder() {
        let p = run(&webm_bytes(2, 4)).unwrap();
        assert_eq!((p.mime, p.class), ("audio/webm", Class::Audio));
        assert!(
            (p.duration.unwrap() - 3.98).abs() < 1e-6,
            "{:?}",
            p.duration
        );
        let v = run(&webm_bytes(1, 1)).unwrap();
        assert_eq!((v.mime, v.class), ("video/webm", Class::Video));
    }

    #[test]
    fn mp4_audio_and_video() {
        fn mp4box(kind: &[u8], body: &[u8]) -> Vec<u8> {
            let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
            v.extend_from_slice(kind);
            v.extend_from_slice(body);
            v
        }
        let mut mvhd = vec![0u8; 100];
        mvhd[12..16].copy_from_slice(&1000u32.to_be_bytes());
        mvhd[16..20].copy_from_slice(&12_500u32.to_be_bytes());
        let hdlr = |h: &[u8]| {
            let mut b = vec![0u8; 24];
            b[8..12].copy_from_slice(h);
            mp4box(b"hdlr", &b)
        };
        let file = |h: &[u8]| {
            let trak = mp4box(b"trak", &mp4box(b"mdia", &hdlr(h)));
            let mut moov_body = mp4box(b"mvhd", &mvhd);
            moov_body.extend(trak);
            let mut v = mp4box(b"ftyp", b"M4A \0\0\0\0isom");
            v.extend(mp4box(b"moov", &moov_body));
            v
        };
        let a = run(&file(b"soun")).unwrap();
        assert_eq!((a.mime, a.class), ("audio/mp4", Class::Audio));
        assert!((a.duration.unwrap() - 12.5).abs() < 1e-9);
        assert_eq!(run(&file(b"vide")).unwrap().class, Class::Video);
    }
}
