//! Sound-card input through cpal 0.18 (feature `live`).
//!
//! The stream is built and owned by a dedicated thread (`scorefollow-live`), because cpal
//! streams are not `Send` on every platform; that keeps [`Capture`](super::Capture) `Send`.
//! The data callback calls [`push_block`] and nothing else (for 16-bit devices it first
//! converts into a scratch buffer allocated up front).
//!
//! Format choice: f32 at the requested (or the device's default) rate, mono when the device
//! offers it (the downmix in `push_block` then costs nothing), otherwise the device's channel
//! count, downmixed in the callback. If the device has no f32 mode at that rate, 16-bit
//! integer input is accepted and converted. `LiveOptions::buffer_frames` asks for a fixed
//! period size.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{BufferSize, SampleFormat, StreamConfig, SupportedStreamConfigRange};

use super::replay::SourceReport;
use super::ring::{self, push_block, SampleConsumer, SourceStats, StampConsumer};
use crate::{Error, Result};

/// Options for a live input.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveOptions {
    /// Sample rate to open (Hz); `None` = the device's default.
    pub sample_rate_hz: Option<u32>,
    /// Fixed period size (frames per callback); `None` = the device's default.
    pub buffer_frames: Option<u32>,
    /// Sample ring capacity (s of audio). Default 2 s.
    pub ring_s: f64,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            sample_rate_hz: None,
            buffer_frames: None,
            ring_s: 2.0,
        }
    }
}

/// An input device as listed by [`list_input_devices`].
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceInfo {
    /// Identifier to pass to `Capture::live` (e.g. `alsa:default`, `alsa:hw:0,0`).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// True for the host's default input.
    pub is_default: bool,
    /// The device's default input configuration, as text (channels, rate, format), if it
    /// reports one.
    pub default_config: Option<String>,
}

fn dev_err(msg: impl Into<String>) -> Error {
    Error::Device(msg.into())
}

fn device_id(d: &cpal::Device) -> Option<String> {
    d.id().ok().map(|id| id.to_string())
}

fn device_name(d: &cpal::Device) -> String {
    d.description()
        .map(|desc| desc.name().to_string())
        .unwrap_or_else(|_| device_id(d).unwrap_or_else(|| "?".into()))
}

/// All input devices of the default host.
pub fn list_input_devices() -> Result<Vec<DeviceInfo>> {
    let host = cpal::default_host();
    let default_id = host.default_input_device().and_then(|d| device_id(&d));
    let devices = host
        .input_devices()
        .map_err(|e| dev_err(format!("cannot list input devices: {e}")))?;
    let mut out = Vec::new();
    for d in devices {
        let Some(id) = device_id(&d) else { continue };
        let default_config = d.default_input_config().ok().map(|c| {
            format!(
                "{} ch, {} Hz, {:?}",
                c.channels(),
                c.sample_rate(),
                c.sample_format()
            )
        });
        out.push(DeviceInfo {
            is_default: default_id.as_deref() == Some(id.as_str()),
            name: device_name(&d),
            id,
            default_config,
        });
    }
    Ok(out)
}

fn find_device(host: &cpal::Host, wanted: Option<&str>) -> Result<cpal::Device> {
    let Some(wanted) = wanted else {
        return host
            .default_input_device()
            .ok_or_else(|| dev_err("there is no default input device"));
    };
    if let Ok(id) = wanted.parse::<cpal::DeviceId>() {
        if let Some(d) = host.device_by_id(&id) {
            return Ok(d);
        }
    }
    let devices: Vec<cpal::Device> = host
        .input_devices()
        .map_err(|e| dev_err(format!("cannot list input devices: {e}")))?
        .collect();
    // Accept the id without its host prefix ("scorein" for "alsa:scorein") or the name.
    for d in &devices {
        let id = device_id(d).unwrap_or_default();
        let bare = id.split_once(':').map_or(id.as_str(), |(_, b)| b);
        if id == wanted || bare == wanted || device_name(d) == wanted {
            return Ok(d.clone());
        }
    }
    let available: Vec<String> = devices
        .iter()
        .map(|d| format!("{} ({})", device_id(d).unwrap_or_default(), device_name(d)))
        .collect();
    Err(dev_err(format!(
        "no input device '{wanted}'; available: {}",
        if available.is_empty() {
            "none".to_string()
        } else {
            available.join(", ")
        }
    )))
}

/// The stream format chosen for a device.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Choice {
    channels: u16,
    rate_hz: u32,
    format: SampleFormat,
}

/// Prefer mono f32, then any-channel f32, then mono i16, then any-channel i16, at `rate`.
fn choose(ranges: &[SupportedStreamConfigRange], rate: u32) -> Option<Choice> {
    let fits = |r: &SupportedStreamConfigRange, fmt: SampleFormat| {
        r.sample_format() == fmt && r.min_sample_rate() <= rate && rate <= r.max_sample_rate()
    };
    for fmt in [SampleFormat::F32, SampleFormat::I16] {
        if ranges.iter().any(|r| fits(r, fmt) && r.channels() == 1) {
            return Some(Choice {
                channels: 1,
                rate_hz: rate,
                format: fmt,
            });
        }
        if let Some(r) = ranges
            .iter()
            .filter(|r| fits(r, fmt) && r.channels() > 0)
            .min_by_key(|r| r.channels())
        {
            return Some(Choice {
                channels: r.channels(),
                rate_hz: rate,
                format: fmt,
            });
        }
    }
    None
}

/// The running live stream's owner thread.
#[derive(Debug)]
pub struct LiveHandle {
    thread: Option<JoinHandle<()>>,
    stop_tx: Option<mpsc::Sender<()>>,
    /// Set once the stream is closed.
    pub finished: Arc<AtomicBool>,
    errors: Arc<StreamErrors>,
}

#[derive(Debug, Default)]
struct StreamErrors {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl LiveHandle {
    /// Ask the owner thread to close the stream (does not wait).
    pub fn request_stop(&mut self) {
        // Dropping the sender wakes the owner thread's `recv`.
        self.stop_tx = None;
    }

    /// Wait for the stream to be closed; returns the first stream error the device reported,
    /// if any.
    pub fn join(&mut self) -> Result<SourceReport> {
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| Error::Other("live input thread panicked".into()))?;
        }
        let n = self.errors.count.load(Ordering::Relaxed);
        if n > 0 {
            let first = self
                .errors
                .first
                .lock()
                .map(|g| g.clone().unwrap_or_default())
                .unwrap_or_default();
            return Err(dev_err(format!("{n} stream error(s), first: {first}")));
        }
        Ok(SourceReport {
            stopped_early: true,
            ..SourceReport::default()
        })
    }

    /// Stop and wait.
    pub fn stop(&mut self) -> Result<()> {
        self.request_stop();
        self.join().map(|_| ())
    }
}

impl Drop for LiveHandle {
    fn drop(&mut self) {
        self.request_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What `start` hands to `Capture::live`.
pub(crate) struct Started {
    pub samples: SampleConsumer,
    pub stamps: StampConsumer,
    pub stats: Arc<SourceStats>,
    pub sample_rate_hz: u32,
    pub device_id: String,
    pub handle: LiveHandle,
}

struct Opened {
    samples: SampleConsumer,
    stamps: StampConsumer,
    stats: Arc<SourceStats>,
    sample_rate_hz: u32,
    device_id: String,
}

/// Open the device and start the stream on its owner thread.
pub(crate) fn start(device: Option<&str>, opts: &LiveOptions, epoch: Instant) -> Result<Started> {
    if !(opts.ring_s.is_finite() && opts.ring_s > 0.0 && opts.ring_s <= 600.0) {
        return Err(Error::invalid(
            "ring length",
            format!("{} s", opts.ring_s),
            "must be within (0, 600] s",
        ));
    }
    if opts.buffer_frames == Some(0) {
        return Err(Error::invalid("buffer size", "0", "must be positive"));
    }
    let wanted = device.map(str::to_string);
    let opts = opts.clone();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<Opened>>();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(StreamErrors::default());
    let (fin, errs) = (Arc::clone(&finished), Arc::clone(&errors));
    let thread = std::thread::Builder::new()
        .name("scorefollow-live".into())
        .spawn(move || {
            let stream = match open_stream(wanted.as_deref(), &opts, epoch, errs) {
                Ok((stream, opened)) => {
                    let _ = ready_tx.send(Ok(opened));
                    stream
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    fin.store(true, Ordering::Release);
                    return;
                }
            };
            // Block until asked to stop (message or sender dropped).
            let _ = stop_rx.recv();
            drop(stream);
            fin.store(true, Ordering::Release);
        })
        .map_err(|e| Error::Other(format!("cannot start the live input thread: {e}")))?;
    let opened = match ready_rx.recv() {
        Ok(r) => r,
        Err(_) => Err(dev_err(
            "the live input thread ended before opening the device",
        )),
    };
    let mut handle = LiveHandle {
        thread: Some(thread),
        stop_tx: Some(stop_tx),
        finished,
        errors,
    };
    match opened {
        Ok(o) => Ok(Started {
            samples: o.samples,
            stamps: o.stamps,
            stats: o.stats,
            sample_rate_hz: o.sample_rate_hz,
            device_id: o.device_id,
            handle,
        }),
        Err(e) => {
            handle.request_stop();
            let _ = handle.thread.take().map(|t| t.join());
            Err(e)
        }
    }
}

fn open_stream(
    wanted: Option<&str>,
    opts: &LiveOptions,
    epoch: Instant,
    errors: Arc<StreamErrors>,
) -> Result<(cpal::Stream, Opened)> {
    let host = cpal::default_host();
    let device = find_device(&host, wanted)?;
    let id = device_id(&device).unwrap_or_else(|| wanted.unwrap_or("default").to_string());
    let rate = match opts.sample_rate_hz {
        Some(r) => r,
        None => device
            .default_input_config()
            .map_err(|e| dev_err(format!("{id}: no default input configuration ({e})")))?
            .sample_rate(),
    };
    let ranges: Vec<SupportedStreamConfigRange> = device
        .supported_input_configs()
        .map_err(|e| dev_err(format!("{id}: cannot query input configurations ({e})")))?
        .collect();
    let choice = choose(&ranges, rate).ok_or_else(|| {
        let offered: Vec<String> = ranges
            .iter()
            .map(|r| {
                format!(
                    "{} ch {:?} {}-{} Hz",
                    r.channels(),
                    r.sample_format(),
                    r.min_sample_rate(),
                    r.max_sample_rate()
                )
            })
            .collect();
        dev_err(format!(
            "{id}: no f32 or i16 input at {rate} Hz; the device offers: {}",
            offered.join("; ")
        ))
    })?;
    let config = StreamConfig {
        channels: choice.channels,
        sample_rate: choice.rate_hz,
        buffer_size: opts
            .buffer_frames
            .map_or(BufferSize::Default, BufferSize::Fixed),
    };
    let period = opts.buffer_frames.unwrap_or(1024) as usize;
    let capacity = ((rate as f64 * opts.ring_s).ceil() as usize).max(4 * period);
    let ends = ring::channel(capacity, period.max(256), epoch);
    let mut state = ends.callback;
    let channels = choice.channels as usize;
    let on_error = move |e: cpal::Error| {
        // Not the data path: a device error may take a lock and allocate.
        errors.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = errors.first.lock() {
            g.get_or_insert_with(|| e.to_string());
        }
    };
    let timeout = Some(Duration::from_secs(5));
    let stream = match choice.format {
        SampleFormat::I16 => {
            let mut conv = vec![0.0f32; 4096 * channels].into_boxed_slice();
            device.build_input_stream::<i16, _, _>(
                config,
                move |data: &[i16], _| {
                    for piece in data.chunks(conv.len()) {
                        let dst = &mut conv[..piece.len()];
                        for (d, &s) in dst.iter_mut().zip(piece) {
                            *d = s as f32 / 32768.0;
                        }
                        push_block(dst, channels, &mut state);
                    }
                },
                on_error,
                timeout,
            )
        }
        _ => device.build_input_stream::<f32, _, _>(
            config,
            move |data: &[f32], _| push_block(data, channels, &mut state),
            on_error,
            timeout,
        ),
    }
    .map_err(|e| {
        dev_err(format!(
            "{id}: cannot open input ({} ch, {} Hz, {:?}): {e}",
            choice.channels, choice.rate_hz, choice.format
        ))
    })?;
    stream
        .play()
        .map_err(|e| dev_err(format!("{id}: cannot start input: {e}")))?;
    tracing::info!(
        device = %id,
        "live input: {} ch, {} Hz, {:?}, buffer {:?}",
        choice.channels,
        choice.rate_hz,
        choice.format,
        opts.buffer_frames
    );
    Ok((
        stream,
        Opened {
            samples: ends.samples,
            stamps: ends.stamps,
            stats: ends.stats,
            sample_rate_hz: choice.rate_hz,
            device_id: id,
        },
    ))
}
