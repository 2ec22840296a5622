//! The `salam` binary: `salam serve` (the default) and the admin commands.

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use salam_hub::config::{Config, LogFormat};
use salam_hub::{Hub, auth, migrate_store, open_store};
use salam_store::{AgentRole, NewAgent, maintenance};
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Salam: live chat for websites, with a multilingual bot and human handoff.
#[derive(Parser)]
#[command(name = "salam", version, about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args)]
struct Global {
    /// TOML configuration file (default: DATA/salam.toml when it exists).
    #[arg(long, env = "SALAM_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// Data directory (holds salam.db) [default: ./data].
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// The first admin's e-mail, used once, when the hub creates the first account
    /// (also `SALAM_ADMIN_EMAIL`) [default: a random address, printed].
    #[arg(long, global = true)]
    admin_email: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub (the default).
    Serve,
    /// Manage agent accounts.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Manage sites.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Check, try and evaluate the bot's rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Print the default configuration as TOML.
    Defaults,
    /// Apply the database migrations the configured store lacks, then exit (hubs also
    /// apply them at start; safe while hubs run and when several start at once).
    Migrate,
    /// Write a consistent, checked copy of the database to FILE; works while the hub
    /// runs and writes.
    Backup {
        /// The copy to write (never overwritten).
        file: PathBuf,
    },
    /// Replace the database with a backup made by `salam backup`. The hub must be
    /// stopped; the database replaced is kept as salam.db.before-restore.
    Restore {
        /// The backup to restore.
        file: PathBuf,
    },
    /// A visitor's data on request: export it, or erase it.
    #[command(subcommand)]
    Visitor(VisitorCommand),
    /// The retention sweep (sites' `retention_days`).
    #[command(subcommand)]
    Retention(RetentionCommand),
}

#[derive(Subcommand)]
enum VisitorCommand {
    /// Write everything stored about a visitor (profile, conversations, messages,
    /// ratings, callbacks) as one JSON document.
    Export {
        #[command(flatten)]
        who: Who,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Erase a visitor's data for good; recorded in the audit log.
    Erase {
        #[command(flatten)]
        who: Who,
    },
}

/// Which visitor: exactly one of --id, --external-id, --email.
#[derive(Args)]
struct Who {
    /// The hub's visitor id (v_...).
    #[arg(long)]
    id: Option<String>,
    /// The site's own customer id, as verified by `identify`.
    #[arg(long)]
    external_id: Option<String>,
    /// An e-mail address the visitor gave (identify, pre-chat or callback form).
    #[arg(long)]
    email: Option<String>,
    /// Public key of the site, to narrow --external-id to one site.
    #[arg(long)]
    site: Option<String>,
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Run one sweep now, whatever `retention.enabled` says (for a timer on one machine
    /// of a deployment with several hubs).
    Run,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Lint rule files: invalid regexes, duplicate ids, missing answers, failing
    /// examples. Prints `file:line: reason`; exits 1 on any error.
    Check {
        /// Rule directory (same as --rules).
        dir: Option<PathBuf>,
        /// Rule directory [default: `bot.rules_dir`, else the pack built into the
        /// binary, as the hub does].
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Show what the bot does with one sentence.
    Try {
        /// Answer in this language (en, ar, fa) instead of the detected one.
        #[arg(long)]
        lang: Option<String>,
        text: String,
        /// Rule directory [default: `bot.rules_dir`, else the pack built into the
        /// binary, as the hub does].
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Evaluate a TSV of `lang<TAB>expected<TAB>text` lines: writes
    /// `lang<TAB>expected<TAB>predicted<TAB>text` to stdout and a summary to stderr.
    Eval {
        file: PathBuf,
        /// Rule directory [default: `bot.rules_dir`, else the pack built into the
        /// binary, as the hub does].
        #[arg(long)]
        rules: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Add an agent; prints a generated password unless --password-stdin is given.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// agent or admin.
        #[arg(long, default_value = "agent")]
        role: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Public key of a site this agent works on (repeatable; default: every site,
        /// including sites added later).
        #[arg(long = "site")]
        sites: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SiteCommand {
    /// Add a site and print its public key and embed snippet.
    Add {
        #[arg(long)]
        name: String,
        /// Allowed origin, such as https://shop.example (repeatable; `*` for any,
        /// which also needs auth.allow_any_origin).
        #[arg(long = "origin", required = true)]
        origins: Vec<String>,
    },
    /// List the sites.
    List,
}

fn load_config(global: &Global) -> anyhow::Result<Config> {
    let data_hint = global
        .data
        .clone()
        .or_else(|| std::env::var_os("SALAM_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("./data"));
    let mut config = match &global.config {
        Some(path) => Config::from_file(path)?,
        None => {
            let implicit = data_hint.join("salam.toml");
            if implicit.exists() {
                Config::from_file(&implicit)?
            } else {
                Config::default()
            }
        }
    };
    config.apply_env()?;
    if let Some(listen) = global.listen {
        config.listen = listen;
    }
    if let Some(data) = &global.data {
        config.data = data.clone();
    }
    if let Some(email) = &global.admin_email {
        config.auth.first_admin_email = Some(email.clone());
    }
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = load_config(&cli.global)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.filter));
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => logger.init(),
        // One object per line: timestamp, level, target, message and fields at the top.
        LogFormat::Json => logger.json().flatten_event(true).init(),
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Agent(AgentCommand::Add {
                email,
                name,
                role,
                password_stdin,
                sites,
            }) => agent_add(&config, email, name, &role, password_stdin, sites).await,
            Command::Site(SiteCommand::Add { name, origins }) => {
                site_add(&config, &name, origins).await
            }
            Command::Site(SiteCommand::List) => site_list(&config).await,
            Command::Rules(command) => rules(&config, command),
            Command::Defaults => {
                print!("{}", Config::default_toml());
                Ok(())
            }
            Command::Migrate => {
                println!("{}", migrate_store(&config).await?);
                Ok(())
            }
            Command::Backup { file } => backup(&config, &file),
            Command::Restore { file } => restore(&config, &file),
            Command::Visitor(command) => visitor(&config, command).await,
            Command::Retention(RetentionCommand::Run) => retention_run(&config).await,
        }
    });
    if let Err(err) = &result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let data = config.data.clone();
    let postgres = config.store.url.is_some();
    let hub = Hub::open(config).await.context("cannot open the hub")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    if let Some(site) = &hub.first_start.site {
        println!(
            "Created the demo site \"{}\" (public key {}).",
            site.name, site.key
        );
    }
    if let Some((email, password)) = &hub.first_start.admin {
        println!("Created the admin account. Sign in with:");
        println!("  e-mail:   {email}");
        println!("  password: {password}");
        println!("This password is shown only once.");
    }
    let stored = match postgres {
        true => "conversations in PostgreSQL".to_owned(),
        false => format!("data in {}", data.display()),
    };
    println!("Salam is listening on http://{address} ({stored})");
    hub.serve(listener, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(terminate) => terminate,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

async fn agent_add(
    config: &Config,
    email: String,
    name: String,
    role: &str,
    password_stdin: bool,
    site_keys: Vec<String>,
) -> anyhow::Result<()> {
    let role = AgentRole::parse(role).context("--role must be agent or admin")?;
    let email = email.trim().to_owned();
    if !auth::valid_email(&email) {
        bail!("--email must be an e-mail address such as sara@shop.example");
    }
    std::fs::create_dir_all(&config.data)?;
    let store = open_store(config).await?;
    // No --site: every site, including sites added later (an explicit membership).
    let all_sites = site_keys.is_empty();
    let mut site_ids = Vec::new();
    for key in site_keys {
        let site = store
            .site_by_key(&key)
            .await?
            .with_context(|| format!("no site has the key {key}"))?;
        site_ids.push(site.id);
    }
    let (password, generated) = if password_stdin {
        let mut password = String::new();
        std::io::stdin().read_to_string(&mut password)?;
        let password = password.trim_end_matches(['\r', '\n']).to_owned();
        if let Some(problem) = auth::password_problem(&password, &email) {
            bail!("{problem}");
        }
        (password, false)
    } else {
        (auth::generate_password(), true)
    };
    let hash = auth::hash_password(&password).map_err(|err| anyhow::anyhow!("{err}"))?;
    let agent = store
        .create_agent(NewAgent {
            email,
            name,
            role,
            password_hash: hash,
            all_sites,
            site_ids,
            capacity: None,
            departments: Vec::new(),
        })
        .await
        .context("cannot add the agent (is the e-mail already registered?)")?;
    println!(
        "Added {} <{}> as {}.",
        agent.name,
        agent.email,
        role.as_str()
    );
    if generated {
        println!("password: {password}");
    }
    Ok(())
}

async fn site_add(config: &Config, name: &str, origins: Vec<String>) -> anyhow::Result<()> {
    for origin in &origins {
        if !salam_hub::admin::valid_origin(origin) {
            bail!(
                "origin {origin:?} must look like https://shop.example (scheme, host, optional port) or be *"
            );
        }
    }
    std::fs::create_dir_all(&config.data)?;
    let store = open_store(config).await?;
    let origins: Vec<String> = origins
        .into_iter()
        .map(|origin| origin.trim_end_matches('/').to_owned())
        .collect();
    let site = store.create_site(name, &origins).await?;
    // The bot speaks for the new site (its name and origin), never for the demo store.
    let settings = serde_json::to_string(&salam_hub::site::SiteSettings::for_new_site())?;
    store.update_site_settings(&site.id, &settings).await?;
    println!("Added site \"{}\" with public key {}.", site.name, site.key);
    println!("Embed it with:");
    println!(
        "  <script src=\"http://{}/widget.js\" data-site=\"{}\" async></script>",
        config.listen, site.key
    );
    Ok(())
}

async fn site_list(config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data)?;
    let store = open_store(config).await?;
    let sites = store.list_sites().await?;
    if sites.is_empty() {
        println!("no sites yet: `salam site add --name NAME --origin https://...`");
    }
    for site in sites {
        println!(
            "{}\t{}\t{}\t{}",
            site.key,
            site.id,
            site.name,
            site.origins.join(",")
        );
    }
    Ok(())
}

/// Reads a rule directory, naming each file by its path for `file:line` errors.
fn rule_files(dir: &std::path::Path) -> anyhow::Result<Vec<salam_bot::RuleFile>> {
    let files = salam_hub::bot::read_rule_files(dir)
        .with_context(|| format!("cannot read the rule directory {}", dir.display()))?;
    if files.is_empty() {
        bail!("no *.toml rule files in {}", dir.display());
    }
    Ok(files
        .into_iter()
        .map(|file| salam_bot::RuleFile::new(dir.join(&file.name).display().to_string(), file.text))
        .collect())
}

/// The rule files a `salam rules` command works on. A directory named on the command
/// line must exist. Without one, the hub's own choice: `bot.rules_dir` when it is a
/// directory, else the pack built into the binary (said on stderr), so the commands
/// work outside the repository as the hub does.
fn chosen_rule_files(
    config: &Config,
    named: Option<PathBuf>,
) -> anyhow::Result<Vec<salam_bot::RuleFile>> {
    if let Some(dir) = named {
        return rule_files(&dir);
    }
    let dir = &config.bot.rules_dir;
    if dir.is_dir() {
        return rule_files(dir);
    }
    eprintln!(
        "note: no rule directory at {}: using the pack built into the binary",
        dir.display()
    );
    Ok(salam_hub::bot::embedded_rule_files())
}

fn load_rules(files: &[salam_bot::RuleFile]) -> anyhow::Result<salam_bot::RuleSet> {
    salam_bot::RuleSet::load(files).map_err(|errors| {
        anyhow::anyhow!(
            "the rules do not load:\n{}",
            salam_hub::bot::format_errors(&errors)
        )
    })
}

fn rules(config: &Config, command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::Check { dir, rules } => {
            let files = chosen_rule_files(config, dir.or(rules))?;
            let errors = salam_bot::RuleSet::check(&files);
            for error in &errors {
                println!("{error}");
            }
            if !errors.is_empty() {
                eprintln!("{} error(s)", errors.len());
                std::process::exit(1);
            }
            let n_rules = salam_bot::RuleSet::load(&files)
                .map(|r| r.rules().len())
                .unwrap_or(0);
            println!(
                "ok: {} files, {n_rules} rules, every example passes",
                files.len()
            );
            Ok(())
        }
        RulesCommand::Try { lang, text, rules } => {
            let rule_set = load_rules(&chosen_rule_files(config, rules)?)?;
            let explained = salam_hub::bot::explain(&rule_set, &text, lang.as_deref());
            let field = |name: &str| match &explained[name] {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Null => "-".into(),
                other => other.to_string(),
            };
            println!("normalized: {}", field("normalized"));
            println!(
                "language:   {} (detected: {})",
                field("lang"),
                field("detected_lang")
            );
            let locale = lang.as_deref().and_then(salam_bot::Lang::parse);
            let decision = rule_set.triage(&salam_bot::TriageInput::new(&text, locale));
            if let Some(corrected) = rule_set.spelling_correction(&text, locale) {
                println!("corrected:  {corrected}");
            }
            let signals = rule_set.signals_in(&text, locale);
            if !signals.is_empty() {
                println!("signals:    {}", signals.join(", "));
            }
            println!("decision:   {}", field("decision"));
            println!(
                "via:        {}",
                decision.via().map_or("-", salam_bot::Via::as_str)
            );
            println!("intent:     {}", field("intent"));
            println!("rule:       {}", field("rule"));
            println!("score:      {}", field("score"));
            if explained["decision"] == "handoff" {
                println!(
                    "handoff:    reason {}, department {}",
                    field("handoff_reason"),
                    field("department")
                );
            }
            println!(
                "reply:      {}",
                field("reply").replace('\n', "\n            ")
            );
            if let Some(options) = explained["quick_replies"].as_array()
                && !options.is_empty()
            {
                let labels: Vec<&str> = options.iter().filter_map(|o| o.as_str()).collect();
                println!("buttons:    {}", labels.join(" | "));
            }
            Ok(())
        }
        RulesCommand::Eval { file, rules } => {
            let rule_set = load_rules(&chosen_rule_files(config, rules)?)?;
            let tsv = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let report = salam_bot::eval::run(&rule_set, &tsv);
            let mut stdout = std::io::stdout().lock();
            for line in &report.lines {
                use std::io::Write;
                writeln!(stdout, "{line}")?;
            }
            eprint!("{}", report.summary());
            eprint!("{}", report.confusion_summary());
            Ok(())
        }
    }
}

/// Backups and restores copy the SQLite file; a PostgreSQL store has PostgreSQL's own.
fn sqlite_only(config: &Config, what: &str) -> anyhow::Result<()> {
    if config.store.url.is_some() {
        anyhow::bail!(
            "`salam {what}` copies the SQLite file; this hub's store is PostgreSQL \
             (store.url): use pg_dump and pg_restore (docs/deploy.md)"
        );
    }
    Ok(())
}

fn backup(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    sqlite_only(config, "backup")?;
    let started = std::time::Instant::now();
    let info = maintenance::backup(&config.database_path(), file).context("backup failed")?;
    println!(
        "Backed up {} conversations and {} messages (schema version {}, {} bytes) to {} in {} ms; integrity check ok.",
        info.conversations,
        info.messages,
        info.schema_version,
        info.bytes,
        info.path.display(),
        started.elapsed().as_millis()
    );
    Ok(())
}

fn restore(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    sqlite_only(config, "restore")?;
    let restored = maintenance::restore(file, &config.database_path()).context("restore failed")?;
    if let Some(previous) = &restored.previous {
        println!(
            "The database it replaced is kept as {}.",
            previous.display()
        );
    }
    println!(
        "Restored {} conversations and {} messages (schema version {}) into {}; integrity check ok.",
        restored.database.conversations,
        restored.database.messages,
        restored.database.schema_version,
        restored.database.path.display()
    );
    Ok(())
}

/// `cli:USER`, for the audit log.
fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

async fn visitor(config: &Config, command: VisitorCommand) -> anyhow::Result<()> {
    use salam_hub::privacy::{self, PrivacyError};
    std::fs::create_dir_all(&config.data)?;
    let store = open_store(config).await?;
    let selector = |who: Who, store: std::sync::Arc<dyn salam_store::Store>| async move {
        let site = match &who.site {
            Some(key) => Some(
                store
                    .site_by_key(key)
                    .await?
                    .with_context(|| format!("no site has the key {key}"))?
                    .id,
            ),
            None => None,
        };
        anyhow::Ok(privacy::selector(who.id, who.external_id, who.email, site)?)
    };
    let now = salam_hub::clock::now_ms();
    match command {
        VisitorCommand::Export { who, out } => {
            let selector = selector(who, store.clone()).await?;
            let export = privacy::export(store.as_ref(), &selector, &cli_actor(), now).await?;
            let json = serde_json::to_string_pretty(&export)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, json + "\n")
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!(
                        "Exported {} visitor(s) to {}.",
                        export.visitors.len(),
                        path.display()
                    );
                }
                None => println!("{json}"),
            }
        }
        VisitorCommand::Erase { who } => {
            let selector = selector(who, store.clone()).await?;
            match privacy::erase(store.as_ref(), &selector, &cli_actor(), now).await {
                Ok(report) => {
                    for visitor in &report.visitors {
                        println!(
                            "Erased {}: {} conversations, {} messages, {} callbacks.",
                            visitor.visitor_id,
                            visitor.erased.conversations,
                            visitor.erased.messages,
                            visitor.erased.offline_requests
                        );
                    }
                    println!("Recorded in the audit log as {}.", cli_actor());
                }
                Err(PrivacyError::Open(open)) => bail!(
                    "the visitor has open conversations ({}): close them in the console, or erase \
                     from the console's admin area, which closes them first",
                    open.join(", ")
                ),
                Err(err) => return Err(err.into()),
            }
        }
    }
    store.flush().await?;
    Ok(())
}

async fn retention_run(config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data)?;
    let store = open_store(config).await?;
    let report = salam_hub::retention::sweep(
        store.as_ref(),
        &config.retention,
        salam_hub::clock::now_ms(),
    )
    .await?;
    println!(
        "Retention: {} site(s) with a retention period; deleted {} conversations, {} messages, {} callbacks and {} visitors in {} batches.",
        report.sites,
        report.conversations,
        report.messages,
        report.offline_requests,
        report.visitors,
        report.batches
    );
    Ok(())
}
