//! `scorefollow devices`: list the audio input devices live following can open.

use clap::Args;

/// Arguments of `scorefollow devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print only the identifiers, one per line (for scripts).
    #[arg(long)]
    pub ids: bool,
}

/// List the input devices of the default audio host.
#[cfg(feature = "live")]
pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let devices = crate::audio::list_input_devices()?;
    if devices.is_empty() {
        anyhow::bail!("no audio input devices found");
    }
    for d in devices {
        if args.ids {
            println!("{}", d.id);
        } else {
            println!(
                "{}{}  {}  [{}]",
                if d.is_default { "* " } else { "  " },
                d.id,
                d.name,
                d.default_config
                    .as_deref()
                    .unwrap_or("no default configuration")
            );
        }
    }
    Ok(())
}

/// Without the `live` feature there is no device support to list.
#[cfg(not(feature = "live"))]
pub fn run(_args: DevicesArgs) -> anyhow::Result<()> {
    anyhow::bail!("this binary was built without live audio input; rebuild with `--features live`")
}
