//! `epro export`: a form's submissions or its codebook, written to standard
//! output or a file, with the same bytes as the HTTP endpoints.
//!
//! It opens the database the configuration names, like `epro outbox`, and may
//! run beside a live server. A spinner with the row count and rate is drawn
//! on stderr when stderr is a terminal and left out otherwise. The next
//! cursor is printed to stderr after a complete export and, with
//! `--cursor-file`, written to that file. An export that fails part way
//! leaves the file as it was, so the next run repeats it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use epro_export::{CodebookFormat, Exporter, Format, HeaderStyle, Layout, Options};
use epro_store::{ExportAudit, ExportCursor, Store};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::ExportArgs;
use crate::config::Config;

/// Runs `epro export`.
///
/// # Errors
///
/// Fails when the configuration, the trials or the database cannot be opened,
/// when the trial or form is not published, when an option or the cursor is
/// invalid, or when reading or writing fails part way.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    crate::telemetry::init(&config.telemetry)?;
    let mut options = if args.codebook { None } else { Some(export_options(&args, &config)?) };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = Store::open(config.store_config(None)?).await?;
        let result = run_on(&store, &args, options.as_mut()).await;
        store.close().await;
        result
    })
}

/// Finds the form in the catalogue stored in the database, then writes its
/// codebook or, with `options`, its submissions.
async fn run_on(store: &Store, args: &ExportArgs, options: Option<&mut Options>) -> anyhow::Result<()> {
    let catalog = epro_http::catalog::LiveCatalog::load(store).await?.get();
    let trial = catalog.trial(&args.trial).with_context(|| format!("no trial {:?} is published", args.trial))?;
    let layout = Layout::new(trial, &args.form)
        .with_context(|| format!("trial {:?} has no form {:?}", args.trial, args.form))?;

    let Some(options) = options else {
        let format = match args.format.as_deref() {
            None => CodebookFormat::Json,
            Some(name) => name.parse().map_err(|()| anyhow::anyhow!("--format must be json or csv with --codebook"))?,
        };
        return write_output(args.output.as_deref(), &epro_export::codebook(&layout, format));
    };
    export(store, layout, options, args).await
}

fn export_options(args: &ExportArgs, config: &Config) -> anyhow::Result<Options> {
    let format = match args.format.as_deref() {
        None => Format::Csv,
        Some(name) => name.parse().map_err(|()| anyhow::anyhow!("--format must be csv, ndjson or fhir"))?,
    };
    if format != Format::Csv && (args.header.is_some() || args.label_language.is_some() || args.bom) {
        bail!("--header, --label-language and --bom apply to --format csv only");
    }
    let header = match args.header.as_deref() {
        Some("label") => HeaderStyle::Label,
        _ => HeaderStyle::LinkId,
    };
    let label_language = match args.label_language.as_deref() {
        Some(name) => epro_export::parse_language(name).context("--label-language must be en or zh-CN")?,
        None => match config.http.default_language {
            epro_http::Language::En => epro_forms::Language::En,
            epro_http::Language::ZhCn => epro_forms::Language::ZhCn,
        },
    };
    Ok(Options { format, since: None, header, label_language, bom: args.bom })
}

/// Reads the cursor from --since or the cursor file, checks that it belongs to
/// this database's backend, runs the export and keeps the next cursor.
async fn export(store: &Store, layout: Layout, options: &mut Options, args: &ExportArgs) -> anyhow::Result<()> {
    let since_text = match (&args.since, &args.cursor_file) {
        (Some(since), _) => Some(since.trim().to_owned()),
        (None, Some(path)) if path.exists() => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("failed to read cursor file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        _ => None,
    };
    if let Some(text) = since_text {
        let cursor =
            text.parse::<ExportCursor>().ok().filter(|cursor| store.accepts_export_cursor(cursor)).with_context(
                || {
                    format!(
                        "{text:?} is not an export cursor of this database; pass the cursor an earlier export printed, \
                     or leave out --since and --cursor-file to export every submission"
                    )
                },
            )?;
        options.since = Some(cursor);
    }

    let mut exporter = Exporter::start(store.clone(), layout, options.clone()).await?;
    if exporter.since_is_beyond_database() {
        anyhow::bail!(
            "the cursor {} lies beyond this database's last submission: it comes from another database or \
             from this one before a restore; leave out --since and --cursor-file to export every submission",
            exporter.next_cursor()
        );
    }
    let audit = ExportAudit {
        actor: crate::outbox_cli::actor(),
        trial_id: args.trial.clone(),
        form_id: args.form.clone(),
        request_id: None,
    };
    store.record_export(audit).await.context("failed to write the export's audit row")?;

    let progress = ProgressBar::new_spinner();
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos} submissions exported ({per_sec})")
            .expect("the progress template is valid"),
    );
    progress.enable_steady_tick(Duration::from_millis(200));

    let mut output = Output::open(args.output.as_deref())?;
    let mut rows: u64 = 0;
    while let Some(chunk) = exporter.next_chunk().await.context("export stopped part way; keep the old cursor")? {
        output.write_all(&chunk.bytes)?;
        rows += chunk.rows as u64;
        progress.inc(chunk.rows as u64);
    }
    output.finish()?;
    progress.finish_and_clear();

    let next = exporter.next_cursor().to_string();
    if let Some(path) = &args.cursor_file {
        replace_file(path, format!("{next}\n").as_bytes())
            .with_context(|| format!("failed to write cursor file {}", path.display()))?;
    }
    eprintln!("exported {rows} submission(s) of {}/{}; next cursor: {next}", args.trial, args.form);
    tracing::info!(trial_id = args.trial, form_id = args.form, rows, "Export finished");
    Ok(())
}

/// Standard output, or a temporary file beside `--output` that replaces it
/// when the export is complete.
enum Output {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File { file: std::io::BufWriter<std::fs::File>, temporary: PathBuf, path: PathBuf },
}

impl Output {
    fn open(path: Option<&Path>) -> anyhow::Result<Output> {
        let Some(path) = path else {
            return Ok(Output::Stdout(std::io::BufWriter::new(std::io::stdout())));
        };
        let temporary = temporary_path(path);
        let file =
            std::fs::File::create(&temporary).with_context(|| format!("failed to create {}", temporary.display()))?;
        Ok(Output::File { file: std::io::BufWriter::new(file), temporary, path: path.to_owned() })
    }

    fn write_all(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self {
            Output::Stdout(stdout) => stdout.write_all(bytes).context("failed to write to standard output"),
            Output::File { file, temporary, .. } => {
                file.write_all(bytes).with_context(|| format!("failed to write {}", temporary.display()))
            }
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Output::Stdout(mut stdout) => stdout.flush().context("failed to write to standard output"),
            Output::File { file, temporary, path } => {
                let file = file.into_inner().map_err(|error| error.into_error())?;
                file.sync_all().with_context(|| format!("failed to write {}", temporary.display()))?;
                std::fs::rename(&temporary, &path).with_context(|| format!("failed to replace {}", path.display()))
            }
        }
    }
}

fn write_output(path: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    let mut output = Output::open(path)?;
    output.write_all(bytes)?;
    output.finish()
}

/// Replaces `path` with `bytes` through a temporary file and a rename, so that a
/// crash leaves the old content or the new, never a mix.
fn replace_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = temporary_path(path);
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}
