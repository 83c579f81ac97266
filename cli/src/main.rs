//! `ticketing`: one binary for every process of the system (DESIGN §2).

mod commands;
mod services;
mod web;

use clap::{Parser, Subcommand};
use std::{net::SocketAddr, process::ExitCode};

/// mimalloc instead of the system allocator: the services allocate per request and per event
/// on many threads, where glibc's malloc took a tenth of their CPU under load (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ticketing", version, about = "Concert ticketing: a choreography saga over NATS JetStream")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in one process on one port (the developer default).
    Up {
        /// Listen address (default: TICKETING_HTTP_ADDR, 0.0.0.0:8080).
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
    /// Run the named services in one process (one per pod in Kubernetes).
    Serve {
        /// Services to run; see `ticketing services`.
        #[arg(required = true)]
        services: Vec<String>,
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
    /// List the services this binary can run.
    Services,
    /// Create the database if missing, apply every migration, and give each service's database
    /// role (ticketing_<service>) its own schema.
    Migrate {
        /// A directory with a file per service (named as `ticketing services` names them) holding
        /// the password its role logs in with: each role present gets its file's content.
        #[arg(long)]
        role_passwords: Option<std::path::PathBuf>,
    },
    /// Create a demo concert with two schedules of 50 seats, to book at once.
    Seed,
    /// JetStream streams and consumers.
    Nats {
        #[command(subcommand)]
        command: NatsCommand,
    },
    /// Redis's ACL users.
    Redis {
        #[command(subcommand)]
        command: RedisCommand,
    },
    /// The dead-letter stream.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// The ingress's route table (DESIGN §3): which service answers each path prefix.
    Routes {
        #[command(subcommand)]
        format: Option<RoutesFormat>,
    },
    /// Check the live system's invariants (DESIGN §10): exit 0 when they hold, 1 on a
    /// violation, 2 when Postgres or NATS cannot be read.
    Audit {
        /// Seconds a state a saga passes through may last before it is a violation.
        #[arg(long, default_value_t = 30)]
        grace_secs: u64,
        /// First wait up to this many seconds for the system to be quiet (outboxes empty,
        /// consumers caught up, no reservation open), then check with no grace.
        #[arg(long)]
        settle_secs: Option<u64>,
    },
    /// Run the payment gateway simulator (development and tests): the gateway's API, its
    /// checkout page and signed webhooks, with failures set by `PUT /sim/settings`
    /// (docs/payments.md). Configured by PG_SIM_API_KEY, PG_SIM_WEBHOOK_SECRET, PG_SIM_WEBHOOK_URL
    /// and PG_SIM_PUBLIC_URL.
    PgSim {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: SocketAddr,
    },
    /// Mint a development identity token.
    Token {
        /// The user's UUID (the token's `sub`).
        #[arg(long)]
        user: uuid::Uuid,
        /// Give the token role admin.
        #[arg(long)]
        admin: bool,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
    },
}

#[derive(Subcommand)]
enum NatsCommand {
    /// Create or update every stream and consumer defined in nats/ (idempotent).
    Apply,
    /// Print the nats-server authorization block: a user per service, allowed to publish its
    /// own subjects and read its own consumers alone, and an admin (passwords from the server's
    /// NATS_PASSWORD_<USER> variables).
    Auth,
    /// Print the event contract as an AsyncAPI 3 document (as nats/asyncapi.json and
    /// /asyncapi.json have it).
    Asyncapi,
}

#[derive(Subcommand)]
enum RedisCommand {
    /// Print each service's ACL user as `<service> <rules>`: its own keys under the prefix alone,
    /// no dangerous command (add `on` and a password to make an ACL file line of it).
    Acl,
}

#[derive(Subcommand)]
enum RoutesFormat {
    /// An nginx configuration routing the table to service replicas (the local topology's ingress).
    Nginx {
        /// `host:port` nginx listens on.
        #[arg(long)]
        listen: String,
        /// A directory of nginx's own for its pid file, logs and temporary files.
        #[arg(long)]
        prefix: String,
        /// A service's replicas, as `service=host:port[,host:port...]`; one per service.
        #[arg(long = "upstream", required = true)]
        upstreams: Vec<String>,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Show dead letters, oldest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Republish one dead letter to its original subject and remove it from the DLQ.
    Replay {
        /// The dead letter's sequence, as `dlq list` shows it.
        seq: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ticketing: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The simulator stands for an external system: it reads none of the services' settings.
    if let Command::PgSim { addr } = cli.command {
        return runtime.block_on(commands::pg_sim(addr));
    }
    let config = match platform::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ticketing: {e}");
            eprintln!("ticketing: set the variables above (see docs/configuration.md) and start again");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        // The report is printed, and its last line says what failed.
        Err(e) if e.is::<commands::Violations>() => ExitCode::from(1),
        Err(e) if e.is::<platform::ConfigError>() => {
            eprintln!("ticketing: {e}");
            eprintln!("ticketing: set the variables above (see docs/configuration.md) and start again");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("ticketing: {e:#}");
            if e.is::<commands::CouldNotAudit>() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

async fn run(command: Command, config: platform::Config) -> anyhow::Result<()> {
    match command {
        Command::PgSim { .. } => anyhow::bail!("pg-sim runs before the services' settings are read"),
        Command::Up { addr } => {
            let all: Vec<String> = services::SERVICES.iter().map(|s| s.name.to_owned()).collect();
            commands::serve(config, &all, addr, "ticketing").await
        }
        Command::Serve { services, addr } => {
            let name = services.join("+");
            commands::serve(config, &services, addr, &name).await
        }
        Command::Services => {
            if services::SERVICES.is_empty() {
                println!("no services yet: `up` serves only /healthz, /readyz and /metrics");
            }
            for s in services::SERVICES {
                println!("{:<16} {}", s.name, s.about);
            }
            Ok(())
        }
        Command::Migrate { role_passwords } => commands::migrate(&config, role_passwords.as_deref()).await,
        Command::Seed => commands::seed(&config).await,
        Command::Nats { command: NatsCommand::Apply } => commands::nats_apply(&config).await,
        Command::Nats { command: NatsCommand::Auth } => commands::nats_auth(&config),
        Command::Nats { command: NatsCommand::Asyncapi } => commands::nats_asyncapi(),
        Command::Redis { command: RedisCommand::Acl } => commands::redis_acl(&config),
        Command::Dlq { command: DlqCommand::List { limit } } => commands::dlq_list(&config, limit).await,
        Command::Dlq { command: DlqCommand::Replay { seq } } => commands::dlq_replay(&config, seq).await,
        Command::Routes { format: None } => {
            commands::routes();
            Ok(())
        }
        Command::Routes { format: Some(RoutesFormat::Nginx { listen, prefix, upstreams }) } => {
            commands::routes_nginx(listen, prefix, &upstreams)
        }
        Command::Audit { grace_secs, settle_secs } => commands::audit(&config, grace_secs, settle_secs).await,
        Command::Token { user, admin, ttl_secs } => commands::token(&config, user, admin, ttl_secs),
    }
}
