#!/usr/bin/env python3
"""Checks the deployment against the code it deploys, without a cluster (run by scripts/check-deploy).

The manifests, as `kubectl kustomize` renders each overlay, and the Dockerfile are held against
the sources of truth in the repository:

- the `ticketing` binary: its subcommands (`--help`, `help <sub>`), its services
  (`ticketing services`, i.e. SERVICES in cli/src/services.rs) and its route table (`ticketing
  routes`, i.e. ROUTES and CATCH_ALL in shared/platform/src/routes.rs);
- shared/platform/src/config.rs and each service's own settings (`impl Settings for`): every
  TICKETING_* variable they read, which of them are required
  and which are URLs (or lists of them); TICKETING_NATS_REPLICAS, which every ticketing process
  must get, equal to the NATS StatefulSet's replicas;
- migrations/src/lib.rs: the Postgres role each service connects as (`service_role`,
  `ticketing_<service>`). A service's pod gets no admin credential (not the Secret that holds the
  admin URL or POSTGRES_PASSWORD, nor either value), and its TICKETING_DATABASE_URL names its own
  role, the server's host and database, and a password from the very Secret key the setup Job's
  `ticketing migrate --role-passwords DIR` sets that role's password from (`DIR/<service>`, a
  mounted Secret with a key for every service); only that admin URL must match the Postgres
  server's user, password and database. The passwords must be URL-safe (they go into the URL as
  they are), and none public (`dev-only-…`) outside TICKETING_ENV=dev;
- `ticketing nats auth` and `ticketing redis acl`, run with the deployment's TICKETING_PREFIX:
  the NATS servers load (by --config and its includes) that authorization block and get every
  user's $NATS_PASSWORD_<USER> from a Secret; each service logs in to NATS as its own user with
  the very Secret key the servers take its password from, and `nats apply` as a user with every
  right. Redis runs with --aclfile from a Secret whose default user has a password and whose
  service users have exactly those rules; each service's TICKETING_REDIS_URL logs in as its own
  user with the password that file gives it, from a Secret key of its own. No service gets
  another's NATS or Redis key, and no NATS or Redis password is `dev-only-…` outside
  TICKETING_ENV=dev;
- rust-toolchain.toml;
- nats/nats-server.conf (the copy under k8s/, what the NATS pods mount) and
  nats/nats-server.version (the NATS image's tag).

Tokens: every process checks them with the public key (TICKETING_JWT_PUBLIC_KEY, a mounted file
holding no private key); the user service alone (SIGNING_SERVICE) also signs them, with
TICKETING_JWT_PRIVATE_KEY, a file mounted from a Secret (the development key only with
TICKETING_ENV=dev, and a copy of shared/platform/dev-keys/jwt-ed25519.pem). No other container
gets a private key by any way, and none the shared secret TICKETING_JWT_SECRET.

Beyond them, the NATS StatefulSet must form its cluster (every pod in --routes, a name per
server, its store on a volume) and Redis must keep an append-only file on a persistent volume.

A subcommand that reads none of the configuration (STANDALONE_COMMANDS: `ticketing pg-sim`, the
card gateway's simulator) is held to its command alone and gets no TICKETING_* variable; an
Ingress path to it stays off the route table's prefixes. Only the services of LEAVING_SERVICES
may leave the cluster, on their ports, and only those of SIMULATORS reach the simulator standing
in for their outside system.

Metrics: every service pod serves /metrics on its container port named ops (TICKETING_OPS_ADDR),
which must be scrapable and private. Its pod template carries the prometheus.io/* annotations,
naming that port; the NetworkPolicies admit the monitoring namespace to it (and to nothing else),
admit nothing else to it (not the ingress controller, which may reach the http port alone); the
Ingress routes only to the Services' http port, and no Service leads to the ops port; the
PodMonitor of k8s/components/prometheus-operator (in an overlay or not) selects every service pod
on that port.

Every problem is reported, each naming the object at fault; the exit status is 1 if there was any.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent

# The services that take a flash sale's traffic get an HPA and a PodDisruptionBudget (issue 6).
HOT_SERVICES = {"queue", "reservation", "seat"}
# Subcommands that read none of the configuration: `ticketing pg-sim`, the card gateway's
# simulator (k8s/components/pg-sim), stands in for a system outside ours and takes its own
# PG_SIM_* settings alone. Its container is no process of the system (no NATS, Postgres or Redis).
STANDALONE_COMMANDS = {"pg-sim"}
# The services that may leave the cluster, and on which ports: external-data for the external
# data platform (HTTP or HTTPS), payment for the card gateway (HTTPS).
LEAVING_SERVICES = {"external-data": {80, 443}, "payment": {443}}
# In-cluster stand-ins for those outside systems, by their pods' app.kubernetes.io/name, and the
# services that may reach them (the development gateway of k8s/components/pg-sim).
SIMULATORS = {"pg-sim": {"payment"}}
# config.rs refuses a delivery URL without its signing secret; the manifests must not set one
# without the other (checked below by name, so a rename in config.rs is caught).
EXTERNAL_URL, EXTERNAL_SECRET = "TICKETING_EXTERNAL_DATA_URL", "TICKETING_EXTERNAL_DATA_SECRET"
JWT_SECRET = "TICKETING_JWT_SECRET"
DATABASE_URL = "TICKETING_DATABASE_URL"
# `ticketing migrate`'s flag naming a directory with a file per service: its role's password.
ROLE_PASSWORDS = "--role-passwords"
# What a role's password may hold: each is put into its service's TICKETING_DATABASE_URL as it
# is, and migrate sets the file's content (trailing newline stripped) as it is, so a character a
# URL must escape would give the two different passwords.
URL_SAFE_PASSWORD = re.compile(r"[A-Za-z0-9._~-]+")
# Services check tokens with the identity provider's public key, a file mounted from a ConfigMap
# or Secret. One service alone, SIGNING_SERVICE, also signs tokens (sign-in): its Deployment, and
# nothing else, gets the private key (TICKETING_JWT_PRIVATE_KEY, a file mounted from a Secret).
# No container gets the shared secret (TICKETING_JWT_SECRET, development and tests).
JWT_PUBLIC_KEY, JWT_PRIVATE_KEY = "TICKETING_JWT_PUBLIC_KEY", "TICKETING_JWT_PRIVATE_KEY"
SIGNING_SERVICE = "user"
DEV_PUBLIC_KEY = (ROOT / "shared/platform/dev-keys/jwt-ed25519.pub.pem").read_text()
DEV_PRIVATE_KEY = (ROOT / "shared/platform/dev-keys/jwt-ed25519.pem").read_text()
# The development Secrets' copy of the private key (kustomize reads no file outside its root).
DEV_PRIVATE_KEY_COPY = ROOT / "k8s/components/dev-secrets/jwt-private-key.pem"
PRIVATE_KEY_MARK = "PRIVATE KEY"  # in the PEM armour of every kind of private key
# Every process sets each stream's replicas to this at start; they must agree with one another and
# with the servers the NATS StatefulSet runs.
NATS_REPLICAS = "TICKETING_NATS_REPLICAS"
MIN_JWT_SECRET, MIN_EXTERNAL_SECRET = 32, 16
# Where the manifests list the TICKETING_* variables they leave at their defaults on purpose.
DEFAULTED_ANNOTATION = "ticketing.dev/defaulted"
# The ingress controller's namespace in both kind's manifest and minikube's addon.
INGRESS_NAMESPACE = "ingress-nginx"
# Where Prometheus runs: the one namespace that may reach a service pod's ops port (/metrics), by
# k8s/base/network-policies.yaml (services-from-monitoring). Change the two together.
MONITORING_NAMESPACE = "monitoring"
# What a service pod serves /metrics on (its container port named ops, TICKETING_OPS_ADDR) and
# the API on (named http, the one the Services and the Ingress lead to).
OPS_PORT, HTTP_PORT, METRICS_PATH = "ops", "http", "/metrics"
# The pod annotations an annotation-driven Prometheus scrape config keeps pods by (the common
# convention), and what they must say; prometheus.io/port must be the container port named ops.
SCRAPE_ANNOTATIONS = {"prometheus.io/scrape": "true", "prometheus.io/path": METRICS_PATH}
SCRAPE_PORT_ANNOTATION = "prometheus.io/port"
# The optional component that has a Prometheus Operator scrape the same pods (a PodMonitor).
PROMETHEUS_OPERATOR = ROOT / "k8s/components/prometheus-operator"
# A path that catches what no service prefix does (ops routes, problem+json 404s).
CATCH_ALL = "/"
# The redis image's working directory, where Redis keeps its files unless --dir says otherwise.
REDIS_DEFAULT_DIR = "/data"
DEFAULT_PORTS = {
    "postgres": 5432,
    "postgresql": 5432,
    "nats": 4222,
    "tls": 4222,
    "redis": 6379,
    "rediss": 6379,
}
# The name of the port a client of each scheme must land on (the Services' and containers' port
# names): NATS also listens for its cluster and its monitoring, which no client may dial.
CLIENT_PORT_NAMES = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "nats": "client",
    "tls": "client",
    "redis": "redis",
    "rediss": "redis",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{where}: {what}")


# ---------------------------------------------------------------------------------------------
# Sources of truth


@dataclass
class Binary:
    """What the built `ticketing` binary says about itself."""

    commands: dict[str, set[str] | None]  # subcommand -> its own subcommands, if it has any
    services: list[str]
    role_prefix: str = "ticketing_"  # migrations::service_role
    path: Path | None = None  # the binary itself, asked per TICKETING_PREFIX (prefixed())
    _by_prefix: dict = field(default_factory=dict)

    def role(self, service: str) -> str:
        """The Postgres role `service` connects as."""
        return self.role_prefix + service.replace("-", "_")

    def prefixed(self, prefix: str, *args: str) -> str:
        """What `ticketing ARGS` prints with TICKETING_PREFIX=prefix (the NATS users' subjects
        and the Redis users' keys depend on it)."""
        if (prefix, args) not in self._by_prefix:
            assert self.path is not None
            self._by_prefix[(prefix, args)] = run_binary(self.path, *args, env={"TICKETING_PREFIX": prefix})
        return self._by_prefix[(prefix, args)]


def clap_commands(help_text: str) -> set[str]:
    """The names under clap's `Commands:` heading, without clap's own `help`."""
    names: set[str] = set()
    in_commands = False
    for line in help_text.splitlines():
        if line.strip() == "Commands:":
            in_commands = True
            continue
        if in_commands:
            if not line.strip():
                break
            names.add(line.split()[0])
    names.discard("help")
    return names


def run_binary(binary: Path, *args: str, env: dict[str, str] | None = None) -> str:
    # Every command but --help reads the configuration, which needs token keys; nothing else
    # from this machine's environment should change what the binary prints.
    given = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    env[JWT_SECRET] = "check-deploy-" + "x" * MIN_JWT_SECRET
    env.update(given)
    out = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"check-deploy: `ticketing {' '.join(args)}` failed: {out.stderr.strip()}")
    return out.stdout


def read_binary(binary: Path) -> Binary:
    commands: dict[str, set[str] | None] = {}
    for name in sorted(clap_commands(run_binary(binary, "--help"))):
        nested = clap_commands(run_binary(binary, "help", name))
        commands[name] = nested or None
    services = [line.split()[0] for line in run_binary(binary, "services").splitlines() if line.strip()]
    if not commands or not services:
        raise SystemExit("check-deploy: could not read the binary's subcommands or services")
    return Binary(commands, services, read_role_prefix(), binary)


@dataclass
class ConfigVars:
    read: set[str]
    required: set[str]
    urls: set[str]
    url_lists: set[str]  # among urls: those that take several, separated by commas


def settings_sources() -> list[Path]:
    """config.rs, and every file that gives a service its own settings (`impl ... Settings for`)."""
    config = ROOT / "shared/platform/src/config.rs"
    # By its path, or by its name where the file imports it (`use platform::config::Settings`).
    own = re.compile(r"impl\s+(?:(?:platform|crate)::config::)?Settings\s+for\b")
    found = [f for f in sorted((ROOT / "services").rglob("*.rs")) + sorted((ROOT / "shared").rglob("*.rs"))
             if f != config and own.search(f.read_text())]
    return [config, *found]


def read_config() -> ConfigVars:
    paths = settings_sources()
    path = paths[0]
    text = "\n".join(p.read_text().split("#[cfg(test)]")[0] for p in paths)
    read = set(re.findall(r'"(TICKETING_[A-Z0-9_]+)"', text))
    required = set(re.findall(r'\.required\(\s*"(TICKETING_[A-Z0-9_]+)"', text))
    urls = set(re.findall(r'\.url\(\s*"(TICKETING_[A-Z0-9_]+)"', text))
    # r.urls(var, default, schemes, several): a URL, or with `true` a comma-separated list.
    url_lists = set(re.findall(r'\.urls\(\s*"(TICKETING_[A-Z0-9_]+)"[^;]*?,\s*true\s*\)', text))
    urls |= set(re.findall(r'\.urls\(\s*"(TICKETING_[A-Z0-9_]+)"', text))
    # If these fail, config.rs changed shape and this parser needs to follow it.
    for what, ok in [
        (f"{JWT_PUBLIC_KEY} and {JWT_SECRET}", {JWT_PUBLIC_KEY, JWT_SECRET} <= read),
        ("URL variables (r.url(...))", bool(urls)),
        (f"{EXTERNAL_URL} and {EXTERNAL_SECRET}", {EXTERNAL_URL, EXTERNAL_SECRET} <= read),
        (NATS_REPLICAS, NATS_REPLICAS in read),
    ]:
        if not ok:
            raise SystemExit(f"check-deploy: found no {what} in {path.relative_to(ROOT)}")
    return ConfigVars(read, required, urls, url_lists)


@dataclass
class Routes:
    """The ingress's route table, as `ticketing routes` prints it."""

    prefixes: list[tuple[str, str]]  # (path prefix, service), more specific first
    catch_all: str  # the service that answers every path no prefix matches


def read_routes(binary: Path) -> Routes:
    prefixes: list[tuple[str, str]] = []
    catch_all: list[str] = []
    for line in run_binary(binary, "routes").splitlines():
        if not line.strip():
            continue
        words = line.split()
        if len(words) != 2 or not words[0].startswith("/"):
            raise SystemExit(f"check-deploy: `ticketing routes` printed {line!r}, not `<prefix> <service>`")
        if words[0] == CATCH_ALL:
            catch_all.append(words[1])
        else:
            prefixes.append((words[0], words[1]))
    if not prefixes or len(catch_all) != 1:
        raise SystemExit(
            f"check-deploy: `ticketing routes` printed {len(prefixes)} prefixes and "
            f"{len(catch_all)} catch-all lines ({CATCH_ALL} <service>); expected some and one"
        )
    return Routes(prefixes, catch_all[0])


def read_role_prefix() -> str:
    """What `migrations::service_role` puts before a service's name (hyphens as underscores)."""
    path = ROOT / "migrations/src/lib.rs"
    m = re.search(
        r'fn\s+service_role\(\s*service:\s*&str\s*\)\s*->\s*String\s*\{\s*'
        r"""format!\("(\w*)\{\}",\s*service\.replace\('-',\s*"_"\)\)\s*\}""",
        path.read_text(),
    )
    if not m:
        # migrations changed how it names the roles, and this parser needs to follow it.
        raise SystemExit(f"check-deploy: found no fn service_role (a format!) in {path.relative_to(ROOT)}")
    return m.group(1)


def nats_version() -> str:
    return (ROOT / "nats/nats-server.version").read_text().strip()


def toolchain_channel() -> str:
    return tomllib.loads((ROOT / "rust-toolchain.toml").read_text())["toolchain"]["channel"]


# ---------------------------------------------------------------------------------------------
# The Dockerfile


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def parse_dockerfile(text: str) -> list[Stage]:
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(substitute(words[0], global_args), name))
            continue
        if keyword == "ARG" and not stages:
            key, _, default = rest.partition("=")
            global_args[key] = default
            continue
        if not stages:
            continue
        stage = stages[-1]
        if keyword == "ARG":
            key, _, default = rest.partition("=")
            stage.env[key] = default or global_args.get(key, "")
        elif keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                stage.env[key] = substitute(value, stage.env)
        stage.instructions.append((keyword, substitute(rest, stage.env)))
    return stages


def exec_form(value: str) -> list[str] | None:
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return None
    return parsed if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed) else None


def cargo_builds(run: str) -> list[list[str]]:
    """The argument lists of every `cargo build` in a RUN command."""
    lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    builds = []
    for i in range(len(words) - 1):
        if words[i] == "cargo" and words[i + 1] == "build":
            args = []
            for w in words[i + 2 :]:
                if w in {"&&", "||", ";", "|", "&"}:
                    break
                args.append(w)
            builds.append(args)
    return builds


def check_dockerfile(p: Problems, binary: Binary) -> int | None:
    """Checks the Dockerfile; returns the runtime stage's numeric UID when it has one."""
    where = "Dockerfile"
    path = ROOT / "Dockerfile"
    if not path.is_file():
        p.add(where, "missing")
        return None
    stages = parse_dockerfile(path.read_text())
    if len(stages) < 2:
        p.add(where, "expected a build stage and a runtime stage")
        return None
    runtime = stages[-1]
    copies = [rest for kw, rest in runtime.instructions if kw == "COPY" and "--from=" in rest]
    from_names = {re.search(r"--from=(\S+)", c).group(1) for c in copies}  # type: ignore[union-attr]
    builders = [s for s in stages[:-1] if s.name in from_names]
    if len(builders) != 1:
        p.add(where, "the runtime stage should COPY --from exactly one build stage")
        return None
    builder = builders[0]

    channel = toolchain_channel()
    m = re.fullmatch(r"(?:docker\.io/(?:library/)?)?rust:([0-9.]+)(?:-(\w+))?", builder.image)
    if not m:
        p.add(where, f"build stage image {builder.image!r} is not an official rust:<version>-<distro> image")
    elif m.group(1) != channel:
        p.add(where, f"build stage uses Rust {m.group(1)}, rust-toolchain.toml says {channel}")
    if builder.env.get("RUSTUP_TOOLCHAIN", channel) != channel:
        p.add(
            where,
            f"RUSTUP_TOOLCHAIN={builder.env['RUSTUP_TOOLCHAIN']} differs from rust-toolchain.toml ({channel})",
        )
    builds = [b for kw, rest in builder.instructions if kw == "RUN" for b in cargo_builds(rest)]
    if len(builds) != 1:
        p.add(where, f"expected one `cargo build` in the build stage, found {len(builds)}")
    for args in builds:
        for flag in ("--release", "--locked"):
            if flag not in args:
                p.add(where, f"`cargo build` lacks {flag}")
        if (
            not any(args[i : i + 2] == ["--bin", "ticketing"] for i in range(len(args)))
            and "--bin=ticketing" not in args
        ):
            p.add(where, "`cargo build` does not name `--bin ticketing`")
        # The tests build with the default features (scripts/test); the image must run the same code.
        for a in args:
            if a in {"-F", "--features", "--all-features", "--no-default-features"} or a.startswith(
                "--features="
            ):
                p.add(
                    where,
                    f"`cargo build` sets features ({a}); the tests build with the default features only",
                )

    rm = re.fullmatch(r"(?:docker\.io/(?:library/)?)?debian:(\w+)-slim", runtime.image)
    if not rm:
        p.add(where, f"runtime image {runtime.image!r} is not debian:<codename>-slim")
    elif m and m.group(2) and m.group(2) != rm.group(1):
        p.add(
            where,
            f"built on {m.group(2)} but runs on {rm.group(1)}: the binary needs the glibc it was linked with",
        )

    users = [rest for kw, rest in runtime.instructions if kw == "USER"]
    uid: int | None = None
    if not users:
        p.add(where, "the runtime stage sets no USER: it would run as root")
    else:
        user = users[-1].split(":")[0]
        if user in {"root", "0"}:
            p.add(where, f"the runtime stage runs as {user}")
        elif not user.isdigit():
            p.add(where, f"USER {user}: use a numeric UID so Kubernetes can enforce runAsNonRoot")
        else:
            uid = int(user)

    entry = [exec_form(rest) for kw, rest in runtime.instructions if kw == "ENTRYPOINT"]
    if not entry or entry[-1] != ["ticketing"]:
        p.add(where, 'the runtime ENTRYPOINT must be the exec form ["ticketing"]')
    cmd = [exec_form(rest) for kw, rest in runtime.instructions if kw == "CMD"]
    if not cmd or not cmd[-1]:
        p.add(where, "the runtime stage has no exec-form CMD")
    else:
        check_command(p, where + " CMD", cmd[-1], binary)

    ignore = ROOT / ".dockerignore"
    patterns = (
        {line.strip().strip("/") for line in ignore.read_text().splitlines()} if ignore.is_file() else set()
    )
    for needed in ("target", ".git"):
        if needed not in patterns:
            p.add(".dockerignore", f"does not keep {needed}/ out of the build context")
    return uid


def check_command(p: Problems, where: str, args: list[str], binary: Binary) -> None:
    """`args` (after the `ticketing` entrypoint) must name what the binary has."""
    if not args:
        p.add(where, "runs `ticketing` without a subcommand")
        return
    sub, rest = args[0], args[1:]
    if sub not in binary.commands:
        p.add(
            where,
            f"`ticketing {sub}`: the binary has no such subcommand (it has {', '.join(sorted(binary.commands))})",
        )
        return
    nested = binary.commands[sub]
    if nested is not None and (not rest or rest[0] not in nested):
        got = rest[0] if rest else "nothing"
        p.add(where, f"`ticketing {sub} {got}`: expected one of {', '.join(sorted(nested))}")
    if sub == "serve":
        names = [a for a in rest if not a.startswith("-")]
        if not names:
            p.add(where, "`ticketing serve` names no service")
        for name in names:
            if name not in binary.services:
                p.add(where, f"`ticketing serve {name}`: the binary has no such service")


def standalone_command(c: dict) -> str | None:
    """The subcommand of STANDALONE_COMMANDS a ticketing container runs, if it runs one."""
    args = c.get("args") or []
    return args[0] if is_ticketing(c) and args and args[0] in STANDALONE_COMMANDS else None


def check_standalone_container(p: Problems, where: str, render: Render, pod: Pod, c: dict, binary: Binary) -> None:
    """A container running a subcommand that reads none of the configuration: a command the
    binary has, run by the image's entrypoint, and no TICKETING_* variable (it would read none, and
    a credential among them would only be exposed)."""
    command = c.get("command")
    if command and command != ["ticketing"]:
        p.add(where, f"command {command} replaces the image's ENTRYPOINT (ticketing)")
    args = list(c.get("args") or [])
    check_command(p, where, args, binary)
    env, _ = container_env(p, where, render, pod, c)
    for var in sorted(v for v in env if v.startswith("TICKETING_")):
        p.add(where, f"{var} is set, but `ticketing {args[0]}` reads none of the configuration")


# ---------------------------------------------------------------------------------------------
# The rendered manifests


def matches(selector: dict | None, labels: dict) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


@dataclass
class Pod:
    """A workload's pod template."""

    owner: str  # Kind/name
    kind: str
    name: str
    workload: dict
    labels: dict
    spec: dict

    def containers(self) -> list[dict]:
        return (self.spec.get("initContainers") or []) + (self.spec.get("containers") or [])


@dataclass
class EnvVar:
    value: str | None  # None: not known before run time
    source: str  # configmap | secret | literal | reference | field
    secret: str | None = None  # the Secret it comes from (envFrom or secretKeyRef)
    key: str | None = None  # and that Secret's key


class Render:
    def __init__(self, docs: list[dict]) -> None:
        self.docs = [d for d in docs if d]
        self.by_kind: dict[str, dict[str, dict]] = {}
        for d in self.docs:
            self.by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
        self.pods = [
            Pod(
                f"{d['kind']}/{d['metadata']['name']}",
                d["kind"],
                d["metadata"]["name"],
                d,
                d["spec"]["template"].get("metadata", {}).get("labels") or {},
                d["spec"]["template"]["spec"],
            )
            for d in self.docs
            if d["kind"] in WORKLOADS
        ]

    def get(self, kind: str, name: str) -> dict | None:
        return self.by_kind.get(kind, {}).get(name)

    def secret_data(self, name: str) -> dict[str, str] | None:
        s = self.get("Secret", name)
        if s is None:
            return None
        data = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
        data.update(s.get("stringData") or {})
        return data

    def selected_pods(self, service: dict) -> list[Pod]:
        selector = service["spec"].get("selector")
        if not selector:
            return []
        return [pod for pod in self.pods if matches({"matchLabels": selector}, pod.labels)]


def image_name(container: dict) -> str:
    """The image's name without registry, tag or digest: `ticketing` of `ticketing:dev`."""
    repo = re.split(r"[@]", container.get("image", ""))[0]
    repo = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
    return repo.rsplit("/", 1)[-1]


def is_ticketing(container: dict) -> bool:
    return image_name(container) == "ticketing"


def expand(value: str, env: dict[str, EnvVar]) -> str | None:
    """Kubernetes' $(VAR) expansion; None when a referenced value is not known before run time."""
    unknown = False

    def one(m: re.Match) -> str:
        nonlocal unknown
        var = env.get(m.group(1))
        if var is None:
            return m.group(0)  # Kubernetes leaves unresolvable references as they are
        if var.value is None:
            unknown = True
            return ""
        return var.value

    out = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, value)
    return None if unknown else out


def label_field(path: str, labels: dict) -> str | None:
    m = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
    return labels.get(m.group(1)) if m else None


def container_env(
    p: Problems, where: str, render: Render, pod: Pod, c: dict
) -> tuple[dict[str, EnvVar], set[str]]:
    """The container's environment as Kubernetes builds it, and its ConfigMaps' defaulted variables."""
    env: dict[str, EnvVar] = {}
    defaulted: set[str] = set()
    for ef in c.get("envFrom") or []:
        prefix = ef.get("prefix", "")
        if "configMapRef" in ef:
            name = ef["configMapRef"]["name"]
            cm = render.get("ConfigMap", name)
            if cm is None:
                if not ef["configMapRef"].get("optional"):
                    p.add(where, f"envFrom ConfigMap {name} is not in the manifests")
                continue
            for k, v in (cm.get("data") or {}).items():
                env[prefix + k] = EnvVar(v, "configmap")
            defaulted |= set(
                ((cm["metadata"].get("annotations") or {}).get(DEFAULTED_ANNOTATION) or "").split()
            )
        if "secretRef" in ef:
            name = ef["secretRef"]["name"]
            data = render.secret_data(name)
            if data is None:
                if not ef["secretRef"].get("optional"):
                    p.add(where, f"envFrom Secret {name} is not in the manifests")
                continue
            for k, v in data.items():
                env[prefix + k] = EnvVar(v, "secret", name, k)
    for e in c.get("env") or []:
        name = e["name"]
        if "value" in e:
            # A value built from references ($(VAR)) is as secret as what it refers to.
            source = "reference" if re.search(r"\$\(\w+\)", e["value"]) else "literal"
            env[name] = EnvVar(expand(e["value"], env), source)
            continue
        vf = e.get("valueFrom") or {}
        if "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            data = render.secret_data(ref["name"])
            if data is None or ref["key"] not in data:
                p.add(
                    where,
                    f"{name} refers to Secret {ref['name']} key {ref['key']}, which the manifests do not have",
                )
                continue
            env[name] = EnvVar(data[ref["key"]], "secret", ref["name"], ref["key"])
        elif "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            cm = render.get("ConfigMap", ref["name"])
            if cm is None or ref["key"] not in (cm.get("data") or {}):
                p.add(
                    where,
                    f"{name} refers to ConfigMap {ref['name']} key {ref['key']}, which the manifests do not have",
                )
                continue
            env[name] = EnvVar(cm["data"][ref["key"]], "configmap")
        elif "fieldRef" in vf:
            env[name] = EnvVar(label_field(vf["fieldRef"]["fieldPath"], pod.labels), "field")
        else:
            env[name] = EnvVar(None, "field")
    return env, defaulted


def service_port(service: dict, port: dict) -> dict | None:
    for sp in service["spec"].get("ports") or []:
        if ("name" in port and sp.get("name") == port["name"]) or (
            "number" in port and sp.get("port") == port["number"]
        ):
            return sp
    return None


def target_reachable(render: Render, service: dict, sp: dict) -> bool:
    """Whether the Service's port lands on a container port of a pod it selects."""
    target = sp.get("targetPort", sp["port"])
    for pod in render.selected_pods(service):
        for c in pod.spec.get("containers") or []:
            for cp in c.get("ports") or []:
                if target in (cp.get("name"), cp.get("containerPort")):
                    return True
    return False


def namespace_suffixes(namespace: str) -> set[str]:
    """What may follow a Service's name in a host name that reaches it from the namespace."""
    return {"", f".{namespace}", f".{namespace}.svc", f".{namespace}.svc.cluster.local"}


@dataclass
class Host:
    """What a host name reaches from a pod of the namespace."""

    service: dict
    pod: str | None = None  # one pod of a StatefulSet, by its name under the headless Service
    workload: Pod | None = None  # that StatefulSet


def resolve_host(render: Render, host: str, namespace: str) -> Host | str:
    """A Service (<service>[.<namespace>[.svc[.cluster.local]]]) or one pod of a StatefulSet
    (<pod>.<its headless service>[...]); a string says why the host is neither."""
    labels = host.split(".")

    def rest(n: int) -> str:
        return "".join("." + label for label in labels[n:])

    suffixes = namespace_suffixes(namespace)
    if rest(1) in suffixes:
        service = render.get("Service", labels[0])
        return Host(service) if service else f"no Service named {labels[0]} in the manifests"
    if len(labels) >= 2 and rest(2) in suffixes:
        pod_name, service_name = labels[0], labels[1]
        service = render.get("Service", service_name)
        if service is None:
            return f"no Service named {service_name} in the manifests"
        if service["spec"].get("clusterIP") != "None":
            return f"Service {service_name} is not headless, so its pods have no names of their own"
        for pod in render.pods:
            if pod.kind == "StatefulSet" and pod.workload["spec"].get("serviceName") == service_name:
                if pod_name in statefulset_pods(pod.workload):
                    return Host(service, pod_name, pod)
        return f"no StatefulSet under Service {service_name} runs a pod named {pod_name}"
    return f"the host is not a Service of namespace {namespace}, nor a StatefulSet pod under one"


def statefulset_pods(sts: dict) -> list[str]:
    """The pod names of a StatefulSet: <name>-0 … <name>-<replicas - 1>."""
    return [f"{sts['metadata']['name']}-{i}" for i in range(sts["spec"].get("replicas", 1))]


def url_port(parts: SplitResult) -> int | None | bool:
    """The URL's port, None when it names none, False when it does not parse."""
    try:
        return parts.port
    except ValueError:
        return False


def url_password(value: str) -> str:
    """The password of a URL, decoded; empty when it has none or is no URL."""
    try:
        return unquote(urlsplit(value).password or "")
    except ValueError:
        return ""


def check_url(
    p: Problems, where: str, var: str, url: str, render: Render, namespace: str, own_role: bool = False
) -> None:
    """`url` reaches a client port of a Service or StatefulSet pod of the namespace; a Postgres
    URL names the server's database and, unless it is a service's `own_role` (check_db_roles),
    the server's own user and password (the admin URL)."""
    parts = urlsplit(url)
    if url_port(parts) is False:
        # Not printed: the URL may hold a password.
        p.add(where, f"{var}: its port does not parse (a character in its user or password that a URL escapes?)")
        return
    target = resolve_host(render, parts.hostname or "", namespace)
    if isinstance(target, str):
        p.add(where, f"{var}={url}: {target}")
        return
    service = target.service
    short = service["metadata"]["name"]
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    expected_name = CLIENT_PORT_NAMES.get(parts.scheme)
    if target.pod is not None and target.workload is not None:
        # A pod's own name reaches its container ports directly, past the Service's ports.
        ports = {
            cp.get("containerPort"): cp.get("name")
            for c in target.workload.containers()
            for cp in c.get("ports") or []
        }
        if port not in ports:
            p.add(where, f"{var}: pod {target.pod} ({target.workload.owner}) has no container port {port}")
        elif expected_name and ports[port] not in {None, expected_name}:
            p.add(
                where, f"{var}: port {port} of pod {target.pod} is its {ports[port]} port, not {expected_name}"
            )
    else:
        sp = service_port(service, {"number": port})
        if sp is None:
            p.add(where, f"{var}: Service {short} has no port {port}")
        elif not target_reachable(render, service, sp):
            p.add(where, f"{var}: Service {short} port {port} reaches no container port of a pod it selects")
        elif expected_name and sp.get("name") not in {None, expected_name}:
            p.add(
                where, f"{var}: port {port} of Service {short} is its {sp['name']} port, not {expected_name}"
            )
    if parts.scheme.startswith("postgres"):
        # The server's own settings decide which database exists, and the user and password of
        # its admin; the services' roles are migrate's (check_db_roles).
        for pod in render.selected_pods(service):
            for c in pod.spec.get("containers") or []:
                # The server's own env problems are not this container's; they are not reported here.
                server_env, _ = container_env(Problems(), pod.owner, render, pod, c)
                expected = {"POSTGRES_DB": parts.path.lstrip("/")}
                if not own_role:
                    expected["POSTGRES_USER"] = unquote(parts.username or "")
                    expected["POSTGRES_PASSWORD"] = unquote(parts.password or "")
                for key, value in expected.items():
                    have = server_env.get(key)
                    if have is not None and have.value is not None and have.value != value:
                        p.add(where, f"{var}: {key} of {pod.owner} differs from the URL's")


def http_port(env: dict[str, EnvVar]) -> int:
    addr = env.get("TICKETING_HTTP_ADDR")
    if addr is None or addr.value is None:
        return 8080  # config.rs's default
    return int(addr.value.rsplit(":", 1)[1])


def ops_port(env: dict[str, EnvVar]) -> int | None:
    """The port of TICKETING_OPS_ADDR (probes and scrapes, off the API's port), if set."""
    addr = env.get("TICKETING_OPS_ADDR")
    if addr is None or not addr.value:
        return None
    return int(addr.value.rsplit(":", 1)[1])


def mounted_file(render: Render, pod: Pod, c: dict, path: str) -> str | tuple[str, str]:
    """The file at `path` in container `c`, from the ConfigMap or Secret mounted there: (what
    holds it, its content), or why there is none."""
    found = mounted_entry(render, pod, c, path)
    if isinstance(found, str):
        return found
    kind, name, _, content = found
    return f"{kind} {name}", content


def mounted_entry(render: Render, pod: Pod, c: dict, path: str) -> str | tuple[str, str, str, str]:
    """The key of a ConfigMap or Secret mounted at `path` in container `c`: (its kind, its name,
    the key, its content), or why there is none."""
    name = volume_at(c, path)
    if name is None:
        return "no volume is mounted there"
    mount = max(
        (m for m in c.get("volumeMounts") or [] if m["name"] == name), key=lambda m: len(m["mountPath"])
    )
    if mount.get("subPath"):
        return f"volume {name} is mounted with subPath: the kubelet never updates it, so a rotated key is not seen"
    volume = next((v for v in pod.spec.get("volumes") or [] if v["name"] == name), None)
    if volume is None:
        return f"volume {name} is not among the pod's volumes"
    if "configMap" in volume:
        source, kind = volume["configMap"], "ConfigMap"
        found = render.get(kind, source["name"])
        data = None if found is None else found.get("data") or {}
    elif "secret" in volume:
        source, kind = volume["secret"], "Secret"
        source = {**source, "name": source.get("secretName")}
        data = render.secret_data(source["name"])
    else:
        return f"volume {name} is neither a ConfigMap nor a Secret"
    holder = f"{kind} {source['name']}"
    if data is None:
        return f"{holder} is not in the render"
    relative = path[len(mount["mountPath"].rstrip("/")) + 1 :]
    items = {i["path"]: i["key"] for i in source.get("items") or []}
    key = items.get(relative) if items else relative
    if key is None or key not in data:
        return f"{holder} has no key for {relative}"
    return kind, source["name"], key, data[key]


def is_signer(pod: Pod, args: list[str]) -> bool:
    """Whether the container is the one that may sign tokens: a Deployment's `serve SIGNING_SERVICE`."""
    return pod.kind == "Deployment" and args == ["serve", SIGNING_SERVICE]


def check_token_keys(
    p: Problems, where: str, render: Render, pod: Pod, c: dict, env: dict[str, EnvVar], args: list[str]
) -> None:
    """Every process checks tokens with the identity provider's public key; the signing service
    alone also gets the private key, and none the shared secret."""
    development = getattr(env.get("TICKETING_ENV"), "value", None) == "dev"
    if JWT_SECRET in env:
        p.add(where, f"{JWT_SECRET} is set: the process would hold a key that signs tokens; give it {JWT_PUBLIC_KEY} alone")
    signer = is_signer(pod, args)
    if JWT_PRIVATE_KEY in env and not signer:
        p.add(
            where,
            f"{JWT_PRIVATE_KEY} is set: only `serve {SIGNING_SERVICE}` may hold the key that signs tokens; "
            f"give it {JWT_PUBLIC_KEY} alone",
        )
    public = env.get(JWT_PUBLIC_KEY)
    if public is None or not public.value:
        p.add(where, f"{JWT_PUBLIC_KEY} is not set: the process checks tokens with no key and refuses to start")
        return
    found = mounted_file(render, pod, c, public.value)
    if isinstance(found, str):
        p.add(where, f"{JWT_PUBLIC_KEY} ({public.value}): {found}")
        return
    holder, content = found
    if PRIVATE_KEY_MARK in content:
        p.add(where, f"{JWT_PUBLIC_KEY}: {holder} holds a private key")
    if content.strip() == DEV_PUBLIC_KEY.strip() and not development:
        p.add(where, f"{JWT_PUBLIC_KEY}: {holder} holds the public development key but TICKETING_ENV is not dev: the process would refuse it")
    if signer:
        check_signing_key(p, where, render, pod, c, env, content, development)


def check_signing_key(
    p: Problems, where: str, render: Render, pod: Pod, c: dict, env: dict[str, EnvVar], public: str, development: bool
) -> None:
    """The signing service's private key: a file mounted from a Secret, a private key, the
    development one only with TICKETING_ENV=dev, and the half of the public key's pair where both
    are known."""
    private = env.get(JWT_PRIVATE_KEY)
    if private is None or not private.value:
        p.add(where, f"{JWT_PRIVATE_KEY} is not set: `serve {SIGNING_SERVICE}` signs tokens and refuses to start without it")
        return
    found = mounted_entry(render, pod, c, private.value)
    if isinstance(found, str):
        p.add(where, f"{JWT_PRIVATE_KEY} ({private.value}): {found}")
        return
    kind, name, _, content = found
    holder = f"{kind} {name}"
    if kind != "Secret":
        p.add(where, f"{JWT_PRIVATE_KEY}: {holder} is not a Secret: the key that signs tokens belongs in one")
    if PRIVATE_KEY_MARK not in content:
        p.add(where, f"{JWT_PRIVATE_KEY}: {holder} holds no private key (PEM)")
    dev_private = content.strip() == DEV_PRIVATE_KEY.strip()
    if dev_private and not development:
        p.add(where, f"{JWT_PRIVATE_KEY}: {holder} holds the development key but TICKETING_ENV is not dev: the process would refuse it")
    # A PEM public key names one key; a JWKS may hold several, so only PEMs are compared.
    dev_public = public.strip() == DEV_PUBLIC_KEY.strip()
    if public.lstrip().startswith("-----BEGIN") and dev_public != dev_private:
        mismatch = (
            f"{holder} holds the development private key but {JWT_PUBLIC_KEY} is another key"
            if dev_private
            else f"{JWT_PUBLIC_KEY} is the development public key but {holder} holds another private key"
        )
        p.add(where, f"{JWT_PRIVATE_KEY}: {mismatch}: no process would accept the tokens it signs")


def private_keys_of(render: Render, pod: Pod, c: dict) -> list[str]:
    """Every private key (PEM) the container gets, from a Secret or ConfigMap by env, envFrom or
    volume: where each comes from."""
    found: list[str] = []

    def scan(kind: str, name: str, data: dict | None, how: str, key: str | None = None) -> None:
        for k, v in (data or {}).items():
            if (key is None or k == key) and PRIVATE_KEY_MARK in str(v):
                found.append(f"{kind} {name} key {k} ({how})")

    for name, how, key in secrets_of(pod, c):
        scan("Secret", name, render.secret_data(name), how, key)
    mounted = {m["name"]: m["mountPath"] for m in c.get("volumeMounts") or []}
    for v in pod.spec.get("volumes") or []:
        if v["name"] not in mounted:
            continue
        for s in [v] + [s for s in (v.get("projected") or {}).get("sources") or []]:
            name = (s.get("configMap") or {}).get("name")
            if name:
                cm = render.get("ConfigMap", name)
                scan("ConfigMap", name, (cm or {}).get("data"), f"volume {v['name']} at {mounted[v['name']]}")
    for ef in c.get("envFrom") or []:
        name = (ef.get("configMapRef") or {}).get("name")
        if name:
            scan("ConfigMap", name, (render.get("ConfigMap", name) or {}).get("data"), "envFrom")
    for e in c.get("env") or []:
        ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
        if ref:
            cm = render.get("ConfigMap", ref["name"]) or {}
            scan("ConfigMap", ref["name"], cm.get("data"), f"{e['name']} from key {ref['key']}", ref["key"])
        elif PRIVATE_KEY_MARK in str(e.get("value", "")):
            found.append(f"the literal value of {e['name']}")
    return found


def check_private_keys(p: Problems, render: Render, ticketing: list[Ticketing]) -> None:
    """No container but the signing service's gets a private key, by any way."""
    signers = {id(t.c) for t in ticketing if is_signer(t.pod, t.args)}
    for pod in render.pods:
        for c in pod.containers():
            if id(c) in signers:
                continue
            for source in private_keys_of(render, pod, c):
                p.add(
                    f"{pod.owner} container {c['name']}",
                    f"gets a private key from {source}: only `serve {SIGNING_SERVICE}` may hold the key that signs tokens",
                )


def check_ticketing_container(
    p: Problems,
    where: str,
    render: Render,
    pod: Pod,
    c: dict,
    binary: Binary,
    config: ConfigVars,
    namespace: str,
) -> tuple[list[str], dict[str, EnvVar]]:
    """Checks one container running the binary; returns its resolved arguments and environment."""
    command = c.get("command")
    if command and command != ["ticketing"]:
        p.add(where, f"command {command} replaces the image's ENTRYPOINT (ticketing)")
    env, defaulted = container_env(p, where, render, pod, c)
    args = []
    for a in c.get("args") or []:
        value = expand(a, env)
        if value is None or re.search(r"\$\(\w+\)", value):
            p.add(where, f"argument {a!r} is not known before the pod runs")
            value = a
        args.append(value)
    check_command(p, where, args, binary)

    for var in sorted(config.required):
        if not (env.get(var) and env[var].value):
            p.add(where, f"{var} is required by config.rs and not set")
    check_token_keys(p, where, render, pod, c, env, args)
    for var in (JWT_SECRET, EXTERNAL_SECRET):
        secret = env.get(var)
        development = getattr(env.get("TICKETING_ENV"), "value", None) == "dev"
        if secret and secret.value and secret.value.startswith("dev-only-") and not development:
            p.add(where, f"{var} is a public development secret but TICKETING_ENV is not dev: the process would refuse it")
    # A service connects to Postgres as its own role (check_db_roles); anything else as the admin.
    own_role = args[:1] == ["serve"] and len(args) == 2
    for var in sorted(config.urls):
        v = env.get(var)
        if v is None:
            p.add(where, f"{var} is not set: its default points at 127.0.0.1, not at the cluster")
        elif v.value is not None:
            for url in v.value.split(",") if var in config.url_lists else [v.value]:
                check_url(p, where, var, url.strip(), render, namespace, own_role and var == DATABASE_URL)
    if EXTERNAL_URL in env and EXTERNAL_SECRET not in env:
        p.add(where, f"{EXTERNAL_URL} is set without {EXTERNAL_SECRET}: the process would refuse to start")
    external = env.get(EXTERNAL_SECRET)
    if external and external.value is not None:
        if external.source != "secret":
            p.add(where, f"{EXTERNAL_SECRET} must come from a Secret, not a {external.source}")
        if len(external.value.encode()) < MIN_EXTERNAL_SECRET:
            p.add(where, f"{EXTERNAL_SECRET} is shorter than {MIN_EXTERNAL_SECRET} bytes")
    db = env.get(DATABASE_URL)
    if db and db.value and urlsplit(db.value).password and db.source in {"configmap", "literal"}:
        p.add(where, f"{DATABASE_URL} holds a password in a {db.source}: keep it in a Secret")
    login = urlsplit(db.value) if db and db.value else None
    if (
        login is not None
        and unquote(login.password or "").startswith("dev-only-")
        and getattr(env.get("TICKETING_ENV"), "value", None) != "dev"
    ):
        p.add(
            where,
            f"{DATABASE_URL}'s password is a public development password but TICKETING_ENV is not dev: "
            f"anyone with this repository could log in as {unquote(login.username or '')}",
        )

    for var in sorted(v for v in env if v.startswith("TICKETING_") and v not in config.read):
        p.add(where, f"{var} is set but config.rs reads no such variable")
    for var in sorted(defaulted - config.read):
        p.add(where, f"{DEFAULTED_ANNOTATION} lists {var}, which config.rs does not read")
    # Required and URL variables were reported above when missing.
    for var in sorted(config.read - set(env) - defaulted - config.required - config.urls):
        p.add(where, f"{var} (read by config.rs) is neither set nor listed in {DEFAULTED_ANNOTATION}")

    if args and args[0] in {"serve", "up"}:
        port = http_port(env)
        ports = {cp.get("name"): cp.get("containerPort") for cp in c.get("ports") or []}
        if ports.get("http") != port:
            p.add(
                where,
                f"listens on {port} (TICKETING_HTTP_ADDR) but its port named http is {ports.get('http')}",
            )
        ops = ops_port(env)
        if ops is None:
            p.add(where, "TICKETING_OPS_ADDR is not set: /metrics and /readyz would be served beside the API, "
                  "where the ingress routes")
        elif ports.get("ops") != ops:
            p.add(where, f"serves probes on {ops} (TICKETING_OPS_ADDR) but its port named ops is {ports.get('ops')}")
        for probe, path in (
            ("readinessProbe", "/readyz"),
            ("livenessProbe", "/healthz"),
            ("startupProbe", "/healthz"),
        ):
            get = (c.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != path or get.get("port") not in {"ops", ops}:
                p.add(where, f"{probe} should GET {path} on the ops port")
    return args, env


@dataclass
class Ticketing:
    """A container running the binary: its arguments and environment, resolved."""

    where: str
    pod: Pod
    c: dict
    args: list[str]
    env: dict[str, EnvVar]


def flag_value(args: list[str], flag: str) -> str | None:
    """The value of `flag value` or `flag=value` among a command's arguments (the last one)."""
    value = None
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(flag + "="):
            value = a[len(flag) + 1 :]
    return value


def password_source(c: dict, env: dict[str, EnvVar], var: str) -> tuple[str, str] | str:
    """The Secret and key the password of the URL in `var` comes from: the URL is written in the
    container's env with `$(VAR)` for its password, VAR a secretKeyRef defined before it (Kubernetes
    expands only those). Otherwise why it comes from no one key."""
    entries = c.get("env") or []
    at = max((i for i, e in enumerate(entries) if e["name"] == var), default=None)
    if at is None:
        held = env.get(var)
        return f"comes whole from envFrom{f' (Secret {held.secret})' if held and held.secret else ''}"
    if "value" not in entries[at]:
        ref = (entries[at].get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            return "is not written in the pod spec"
        return f"comes whole from Secret {ref['name']} key {ref['key']}"
    raw = urlsplit(entries[at]["value"]).password
    m = re.fullmatch(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", raw or "")
    if not m:
        return "has no password" if raw is None else "has its password written in the URL"
    earlier = [e for e in entries[:at] if e["name"] == m.group(1)]
    ref = (earlier[-1].get("valueFrom") or {}).get("secretKeyRef") if earlier else None
    if ref is None:
        return f"takes its password from $({m.group(1)}), which is no secretKeyRef defined before it"
    return ref["name"], ref["key"]


def secrets_of(pod: Pod, c: dict) -> list[tuple[str, str, str | None]]:
    """Every Secret the container gets: (its name, how, the one key it takes or None for all)."""
    found: list[tuple[str, str, str | None]] = []
    for ef in c.get("envFrom") or []:
        if "secretRef" in ef:
            found.append((ef["secretRef"]["name"], "envFrom", None))
    for e in c.get("env") or []:
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            found.append((ref["name"], f"{e['name']} from key {ref['key']}", ref["key"]))
    mounted = {m["name"]: m["mountPath"] for m in c.get("volumeMounts") or []}
    for v in pod.spec.get("volumes") or []:
        if v["name"] not in mounted:
            continue
        sources = [v] + [s for s in (v.get("projected") or {}).get("sources") or []]
        for s in sources:
            name = (s.get("secret") or {}).get("secretName") or (s.get("secret") or {}).get("name")
            if name:
                found.append((name, f"volume {v['name']} at {mounted[v['name']]}", None))
    return found


def check_db_roles(p: Problems, render: Render, binary: Binary, ticketing: list[Ticketing]) -> None:
    """Least privilege in Postgres: `ticketing migrate` runs as the admin and sets every service's
    role's password from a mounted Secret (--role-passwords, a file per service); each service
    connects as its own role with the password of its own key of that Secret, and gets nothing
    of the admin's."""
    # The admin's credentials: migrate's URL, the server's POSTGRES_PASSWORD, their Secrets.
    migrates = [t for t in ticketing if t.args[:1] == ["migrate"]]
    if not migrates:
        p.add(
            "ticketing migrate", "no container runs it: nothing makes the services' roles or sets their passwords"
        )
    admin_secrets: set[str] = set()
    admin_urls: list[str] = []
    admin_passwords: set[str] = set()
    for t in migrates:
        url = t.env.get(DATABASE_URL)
        if url is not None and url.secret:
            admin_secrets.add(url.secret)
        if url is not None and url.value:
            admin_urls.append(url.value)
            admin_passwords.add(url_password(url.value))
    for pod in render.pods:
        for c in pod.containers():
            if is_ticketing(c):
                continue
            server_env, _ = container_env(Problems(), pod.owner, render, pod, c)
            password = server_env.get("POSTGRES_PASSWORD")
            if password is not None and password.secret:
                admin_secrets.add(password.secret)
            if password is not None and password.value:
                admin_passwords.add(password.value)
    admin_passwords.discard("")

    # What migrate offers each service: the Secret key its role's password is set from.
    offered: dict[str, tuple[str, str]] = {}
    for t in migrates:
        directory = flag_value(t.args, ROLE_PASSWORDS)
        if directory is None:
            p.add(
                t.where,
                f"runs `ticketing migrate` without {ROLE_PASSWORDS}: the services' roles get no "
                "password, and no service can log in",
            )
            continue
        directory = directory.rstrip("/")
        volume = volume_at(t.c, directory + "/-")
        spec = next((v for v in t.pod.spec.get("volumes") or [] if v["name"] == volume), None)
        if spec is None or "secret" not in spec:
            if volume is None:
                why = "no volume is mounted there"
            elif spec is None:
                why = f"volume {volume} is not among the pod's volumes"
            else:
                why = f"volume {volume} is not a Secret"
            p.add(
                t.where, f"{ROLE_PASSWORDS} {directory}: {why}; the roles' passwords must come from a mounted Secret"
            )
            continue
        mount = max(
            (m for m in t.c.get("volumeMounts") or [] if m["name"] == volume), key=lambda m: len(m["mountPath"])
        )
        if mount.get("readOnly") is not True:
            p.add(t.where, f"{ROLE_PASSWORDS} {directory}: volume {volume} is not mounted readOnly")
        development = getattr(t.env.get("TICKETING_ENV"), "value", None) == "dev"
        for service in binary.services:
            role = binary.role(service)
            found = mounted_entry(render, t.pod, t.c, f"{directory}/{service}")
            if isinstance(found, str):
                p.add(
                    t.where,
                    f"{ROLE_PASSWORDS} {directory} has no file {service} ({found}): role {role} would get "
                    f"no password, and {service} could not log in",
                )
                continue
            _, name, key, content = found
            offered.setdefault(service, (name, key))
            if not URL_SAFE_PASSWORD.fullmatch(content):
                p.add(
                    t.where,
                    f"{ROLE_PASSWORDS}: Secret {name} key {key} is empty or not URL-safe (letters, digits, "
                    f"- . _ ~; no trailing newline): {service}'s {DATABASE_URL} carries it as it is, and {role} "
                    "would get another password than the one it logs in with",
                )
            if content.startswith("dev-only-") and not development:
                p.add(
                    t.where,
                    f"{ROLE_PASSWORDS}: Secret {name} key {key} is a public development password but "
                    f"TICKETING_ENV is not dev: anyone with this repository could log in as {role}",
                )
    password_secrets = {name for name, _ in offered.values()}

    for t in ticketing:
        if t.args[:1] != ["serve"] or len(t.args) != 2:
            continue
        service = t.args[1]
        role = binary.role(service)
        expected = offered.get(service)
        source = password_source(t.c, t.env, DATABASE_URL)
        for name, how, key in secrets_of(t.pod, t.c):
            if name in admin_secrets:
                p.add(
                    t.where,
                    f"gets Secret {name} ({how}), which holds the admin's {DATABASE_URL} or "
                    f"POSTGRES_PASSWORD: a service connects as its own role alone",
                )
            # The URL's own password source is checked below.
            elif name in password_secrets and (name, key) not in {expected or (name, service), source}:
                p.add(
                    t.where,
                    f"gets Secret {name} ({how}), which holds other services' roles' passwords: "
                    f"a service gets its own key alone ({service})",
                )
        for var, v in sorted(t.env.items()):
            if v.secret in admin_secrets or v.value is None:
                continue  # said above, or not known here
            if (
                var == "POSTGRES_PASSWORD"
                or v.value in admin_urls
                or v.value in admin_passwords
                or url_password(v.value) in admin_passwords
            ):
                p.add(
                    t.where,
                    f"{var} holds the admin's {DATABASE_URL} or POSTGRES_PASSWORD: a service connects as "
                    "its own role alone",
                )

        db = t.env.get(DATABASE_URL)
        if db is None:
            continue  # check_ticketing_container says so
        if db.value is None:
            p.add(t.where, f"{DATABASE_URL} is not known before the pod runs: its role cannot be checked")
            continue
        parts = urlsplit(db.value)
        if url_port(parts) is False:
            continue  # check_url says so
        user = unquote(parts.username or "")
        if user != role:
            p.add(
                t.where,
                f"{DATABASE_URL} logs in as {user or 'no user'}, not as {role}, the role of {service} "
                "(migrations::service_role), which owns its schema alone",
            )
        for admin in admin_urls:
            a = urlsplit(admin)
            if url_port(a) is False:
                continue  # check_url says so
            here = f"{parts.hostname}:{parts.port or DEFAULT_PORTS.get(parts.scheme)}"
            there = f"{a.hostname}:{a.port or DEFAULT_PORTS.get(a.scheme)}"
            if here != there:
                p.add(
                    t.where,
                    f"{DATABASE_URL} names the server {here} but the admin URL (migrate's) {there}: the "
                    "roles and their passwords are made on the admin's",
                )
            if parts.path != a.path:
                p.add(
                    t.where,
                    f"{DATABASE_URL} names the database {parts.path.lstrip('/')} but the admin URL (migrate's) "
                    f"{a.path.lstrip('/')}: migrate gives the roles their schemas there",
                )
        if isinstance(source, str):
            where_from = f" (Secret {expected[0]} key {expected[1]})" if expected else ""
            p.add(
                t.where,
                f"{DATABASE_URL} {source}: its password must be $(VAR), VAR from the Secret key the setup "
                f"Job's {ROLE_PASSWORDS} sets {role}'s password from{where_from}",
            )
        elif expected is not None and source != expected:
            p.add(
                t.where,
                f"{DATABASE_URL}'s password comes from Secret {source[0]} key {source[1]}, but the setup "
                f"Job's {ROLE_PASSWORDS} sets {role}'s from Secret {expected[0]} key {expected[1]}",
            )


def deployment_prefix(p: Problems, ticketing: list[Ticketing]) -> str:
    """The TICKETING_PREFIX every ticketing process gets (empty when unset): the NATS users'
    subjects and the Redis users' keys are under it."""
    values: dict[str, list[str]] = {}
    for t in ticketing:
        v = t.env.get("TICKETING_PREFIX")
        values.setdefault("" if v is None or v.value is None else v.value, []).append(t.where)
    if len(values) > 1:
        said = "; ".join(f"{v!r} in {', '.join(ws)}" for v, ws in sorted(values.items()))
        p.add("TICKETING_PREFIX", f"the ticketing workloads disagree ({said}): each would use other subjects and keys")
    return min(values, key=lambda v: len(values[v])) if len(values) > 1 else next(iter(values), "")


def is_development(env: dict[str, EnvVar]) -> bool:
    return getattr(env.get("TICKETING_ENV"), "value", None) == "dev"


def config_files(render: Render, pod: Pod, c: dict, path: str, p: Problems, where: str, depth: int = 0) -> list[tuple[str, str, str]]:
    """The nats-server configuration file at `path` in container `c` and those it includes, in
    order: (path, what holds it, content). Problems for a file that is not there."""
    found = mounted_file(render, pod, c, path)
    if isinstance(found, str):
        p.add(where, f"configuration file {path}: {found}")
        return []
    holder, content = found
    files = [(path, holder, content)]
    for m in re.finditer(r"""^[ \t]*include[ \t]+['"]?([^'"\s;]+)""", content, re.MULTILINE):
        included = m.group(1)
        if not included.startswith("/"):
            # nats-server reads an include relative to the including file's directory.
            included = os.path.normpath(os.path.join(os.path.dirname(path), included))
        if depth < 5:
            files += config_files(render, pod, c, included, p, where, depth + 1)
    return files


def check_nats_users(p: Problems, render: Render, binary: Binary, ticketing: list[Ticketing], prefix: str) -> None:
    """Least privilege in NATS: the servers load the users of `ticketing nats auth` for the
    deployment's TICKETING_PREFIX and get every user's password from a Secret; each service logs
    in as its own user with its own key of that Secret, `nats apply` as a user with every right."""
    expected = binary.prefixed(prefix, "nats", "auth")
    users = re.findall(r'\{user:\s*"([^"]+)",\s*password:\s*\$(\w+)(\s*,\s*permissions)?', expected)
    if not users:
        raise SystemExit("check-deploy: `ticketing nats auth` printed no `{user: \"…\", password: $VAR` entries")
    admins = {user for user, _, restricted in users if not restricted}
    sts = render.get("StatefulSet", "nats")
    if sts is None:
        return  # check_nats_config says so
    pod = next(q for q in render.pods if q.owner == "StatefulSet/nats")
    containers = [c for c in pod.spec.get("containers") or [] if image_name(c) == "nats"]
    if len(containers) != 1:
        return  # check_nats_cluster says so
    c = containers[0]
    cw = f"{pod.owner} container {c['name']}"
    config = nats_flags((c.get("command") or [])[1:] + (c.get("args") or [])).get("config")
    if not config:
        p.add(cw, "no --config: the servers would run without the users of `ticketing nats auth`, open to anyone")
        return
    files = config_files(render, pod, c, config, p, cw)
    contents = [content for _, _, content in files]
    source = (ROOT / "nats/nats-server.conf").read_text()
    if files and source not in contents:
        p.add(cw, f"--config {config} loads no copy of nats/nats-server.conf (directly or by include)")
    said = f"`ticketing nats auth` with TICKETING_PREFIX={prefix!r}"
    if files and expected not in contents:
        auth = [f"{path} ({holder})" for path, holder, content in files if "authorization" in content]
        p.add(
            cw,
            f"--config {config} loads no authorization block equal to {said}"
            + (f" ({', '.join(auth)} differs)" if auth else " (none at all: anyone may connect and do anything)")
            + ": regenerate k8s/base/nats/auth.conf with that command",
        )
    env, _ = container_env(p, cw, render, pod, c)
    server_key: dict[str, tuple[str, str]] = {}  # user -> the Secret and key of its password
    for user, var, _ in users:
        v = env.get(var)
        if v is None:
            p.add(cw, f"{said} names user {user}'s password ${var}, which the container does not get: nats-server refuses the configuration")
        elif v.secret is None or v.key is None:
            p.add(cw, f"${var} (user {user}'s password) must come from a Secret, not a {v.source}")
        elif not v.value:
            p.add(cw, f"${var} (user {user}'s password): Secret {v.secret} key {v.key} is empty")
        else:
            server_key[user] = (v.secret, v.key)
    nats_secrets = {name for name, _ in server_key.values()}

    for t in ticketing:
        serves = t.args[1] if t.args[:1] == ["serve"] and len(t.args) == 2 else None
        applies = t.args[:2] == ["nats", "apply"]
        user = t.env.get("TICKETING_NATS_USER")
        password = t.env.get("TICKETING_NATS_PASSWORD")
        if password is not None and password.value and password.value.startswith("dev-only-") and not is_development(t.env):
            p.add(
                t.where,
                "TICKETING_NATS_PASSWORD is a public development password but TICKETING_ENV is not dev: "
                f"anyone with this repository could log in to NATS as {getattr(user, 'value', None)}",
            )
        if password is not None and password.value is not None and password.secret is None:
            p.add(t.where, f"TICKETING_NATS_PASSWORD must come from a Secret, not a {password.source}")
        if user is None or not user.value:
            if serves or applies:
                who = f"its own user, {serves}" if serves else f"a user with every right ({', '.join(sorted(admins))})"
                p.add(t.where, f"TICKETING_NATS_USER is not set: it must log in to NATS as {who}")
            continue
        name = user.value
        if serves and name != serves:
            p.add(t.where, f"logs in to NATS as {name}, not as {serves}, the user allowed {serves}'s subjects alone")
        elif applies and name not in admins:
            p.add(
                t.where,
                f"runs `nats apply` as NATS user {name}, which may not change streams: log in as "
                f"{', '.join(sorted(admins))}",
            )
        expected_key = server_key.get(name)
        if not any(u == name for u, _, _ in users):
            p.add(t.where, f"logs in to NATS as {name}, a user {said} does not print")
        elif expected_key is not None and password is not None and (password.secret, password.key) != expected_key:
            got = f"Secret {password.secret} key {password.key}" if password.secret else f"a {password.source}"
            p.add(
                t.where,
                f"TICKETING_NATS_PASSWORD comes from {got}, but the NATS servers take user {name}'s "
                f"password from Secret {expected_key[0]} key {expected_key[1]}",
            )
        if serves:
            # Its password's own source is checked above.
            own = {server_key.get(serves), (getattr(password, "secret", None), getattr(password, "key", None))}
            for secret, how, key in secrets_of(t.pod, t.c):
                if secret in nats_secrets and (secret, key) not in own | {(secret, serves)}:
                    p.add(
                        t.where,
                        f"gets Secret {secret} ({how}), which holds other NATS users' passwords: a "
                        f"service gets its own key alone ({serves})",
                    )


def redis_options(c: dict) -> dict[str, list[str]]:
    """redis-server --name value…; the image's entrypoint puts redis-server before flags."""
    options: dict[str, list[str]] = {}
    key = None
    for w in (c.get("command") or [])[1:] + (c.get("args") or []):
        if w.startswith("--"):
            key = w[2:].lower()
            options[key] = []
        elif key is not None:
            options[key].append(w)
    return options


@dataclass
class AclUser:
    on: bool
    passwords: set[str]  # in plain text (>password)
    hashes: set[str]  # SHA-256 in hex (#hash)
    nopass: bool
    rules: list[str]  # everything else, in order


def parse_acl(text: str) -> dict[str, AclUser]:
    users: dict[str, AclUser] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "user":
            continue
        u = AclUser(False, set(), set(), False, [])
        for w in words[2:]:
            if w in {"on", "off"}:
                u.on = w == "on"
            elif w.startswith(">"):
                u.passwords.add(w[1:])
            elif w.startswith("#"):
                u.hashes.add(w[1:].lower())
            elif w == "nopass":
                u.nopass = True
            else:
                u.rules.append(w)
        users[words[1]] = u
    return users


def acl_accepts(u: AclUser, password: str) -> bool:
    return u.nopass or password in u.passwords or hashlib.sha256(password.encode()).hexdigest() in u.hashes


def check_redis_users(p: Problems, render: Render, binary: Binary, ticketing: list[Ticketing], prefix: str) -> None:
    """Least privilege in Redis: the server loads an ACL file from a Secret whose default user
    (the admin) has a password and whose service users have the rules of `ticketing redis acl`;
    each service logs in as its own user with the password that file gives it."""
    expected: dict[str, str] = {}
    for line in binary.prefixed(prefix, "redis", "acl").splitlines():
        if line.strip():
            service, _, rules = line.strip().partition(" ")
            expected[service] = rules
    said = f"`ticketing redis acl` with TICKETING_PREFIX={prefix!r}"
    acls: list[tuple[str, str, dict[str, AclUser]]] = []  # (where, what holds it, its users)
    acl_secrets: set[str] = set()
    for pod in [q for q in render.pods if q.labels.get("app.kubernetes.io/name") == "redis"]:
        for c in pod.spec.get("containers") or []:
            if image_name(c) != "redis":
                continue
            cw = f"{pod.owner} container {c['name']}"
            aclfile = " ".join(redis_options(c).get("aclfile", []))
            if not aclfile:
                p.add(cw, "runs without --aclfile: every client is the default user, with no password and every right")
                continue
            found = mounted_entry(render, pod, c, aclfile)
            if isinstance(found, str):
                p.add(cw, f"--aclfile {aclfile}: {found}")
                continue
            kind, name, key, content = found
            holder = f"{kind} {name} key {key}"
            if kind != "Secret":
                p.add(cw, f"--aclfile {aclfile}: {holder} holds the users' passwords: keep it in a Secret")
            else:
                acl_secrets.add(name)
            users = parse_acl(content)
            acls.append((cw, holder, users))
            default = users.get("default")
            if default is None:
                p.add(cw, f"--aclfile {aclfile} ({holder}) has no user default: Redis makes one with no password and every right")
            elif default.on and (default.nopass or not (default.passwords or default.hashes)):
                p.add(cw, f"--aclfile {aclfile} ({holder}): user default has no password, so anyone may connect with every right")
            for service, rules in expected.items():
                u = users.get(service)
                if u is None:
                    p.add(cw, f"--aclfile {aclfile} ({holder}) has no user {service}: {service} could not log in")
                    continue
                if u.rules != rules.split():
                    p.add(
                        cw,
                        f"--aclfile {aclfile} ({holder}): user {service}'s rules {' '.join(u.rules)!r} differ "
                        f"from {said}: {rules!r}",
                    )
                if not u.on or u.nopass or not (u.passwords or u.hashes):
                    p.add(cw, f"--aclfile {aclfile} ({holder}): user {service} is not `on` with a password (and no nopass)")
            for extra in sorted(set(users) - set(expected) - {"default"}):
                p.add(cw, f"--aclfile {aclfile} ({holder}) has user {extra}, which {said} does not print")
            probe_auth = container_env(Problems(), cw, render, pod, c)[0].get("REDISCLI_AUTH")
            if default is not None and probe_auth is not None and probe_auth.value is not None:
                if not acl_accepts(default, probe_auth.value):
                    p.add(cw, "REDISCLI_AUTH is not user default's password in the ACL file: the probe's redis-cli would fail")

    password_secrets: set[str] = set()
    for t in ticketing:
        url = t.env.get("TICKETING_REDIS_URL")
        if url is None or url.value is None:
            continue  # check_ticketing_container says so
        parts = urlsplit(url.value)
        if url_port(parts) is False:
            continue  # check_url says so
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        if password.startswith("dev-only-") and not is_development(t.env):
            p.add(
                t.where,
                "TICKETING_REDIS_URL's password is a public development password but TICKETING_ENV is not "
                f"dev: anyone with this repository could log in to Redis as {user or 'default'}",
            )
        if password and url.source in {"configmap", "literal"}:
            p.add(t.where, f"TICKETING_REDIS_URL holds a password in a {url.source}: keep it in a Secret")
        if t.args[:1] != ["serve"] or len(t.args) != 2:
            continue
        service = t.args[1]
        if user != service:
            p.add(
                t.where,
                f"TICKETING_REDIS_URL logs in as {user or 'the default user'}, not as {service}, the Redis "
                f"user allowed {service}'s keys alone",
            )
        for cw, holder, users in acls:
            u = users.get(user)
            if u is not None and not acl_accepts(u, password):
                p.add(
                    t.where,
                    f"TICKETING_REDIS_URL's password is not the one {holder} ({cw}) gives user {user}: "
                    f"{service} could not log in",
                )
        source = password_source(t.c, t.env, "TICKETING_REDIS_URL")
        if isinstance(source, str):
            p.add(t.where, f"TICKETING_REDIS_URL {source}: its password must be $(VAR), VAR from its own Secret key")
            continue
        password_secrets.add(source[0])
        for secret, how, key in secrets_of(t.pod, t.c):
            if secret in acl_secrets:
                p.add(t.where, f"gets Secret {secret} ({how}), Redis's ACL file with every user's password")
            elif secret == source[0] and key != source[1]:
                p.add(
                    t.where,
                    f"gets Secret {secret} ({how}), which holds other Redis users' passwords: a service "
                    f"gets its own key alone ({source[1]})",
                )


def check_security(p: Problems, pod: Pod, image_uid: int | None) -> None:
    pod_sc = pod.spec.get("securityContext") or {}
    if pod.spec.get("automountServiceAccountToken") is not False:
        p.add(pod.owner, "mounts a service-account token it never uses (automountServiceAccountToken)")
    for c in pod.containers():
        where = f"{pod.owner} container {c['name']}"
        sc = c.get("securityContext") or {}
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            p.add(where, "runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            p.add(where, "runs as UID 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp != "RuntimeDefault":
            p.add(where, f"seccompProfile is {seccomp}, not RuntimeDefault")
        if sc.get("allowPrivilegeEscalation") is not False:
            p.add(where, "allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            p.add(where, "readOnlyRootFilesystem is not true")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            p.add(where, "does not drop ALL capabilities")
        if (sc.get("capabilities") or {}).get("add"):
            p.add(where, "adds capabilities")
        resources = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for res in ("cpu", "memory"):
                if res not in (resources.get(kind) or {}):
                    p.add(where, f"no {res} {kind[:-1]}")
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if is_ticketing(c) and image_uid is not None and uid is not None and uid != image_uid:
            p.add(where, f"runAsUser {uid} differs from the image's USER {image_uid}")


def policy_selects(policy: dict, pod: Pod) -> bool:
    return matches(policy["spec"].get("podSelector") or {}, pod.labels)


def is_dns(peer: dict) -> bool:
    ns = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
    target = (peer.get("podSelector") or {}).get("matchLabels") or {}
    return ns == {"kubernetes.io/metadata.name": "kube-system"} and target == {"k8s-app": "kube-dns"}


def port_list(rule: dict) -> str:
    ports = [str(pt.get("port")) for pt in rule.get("ports") or []]
    return "port " + ", ".join(ports) if ports else "every port"


def cluster_ports(pod: Pod) -> set[int | str]:
    """The port a clustered backend's servers talk to one another on: its container port named
    cluster, by number or name; empty for a backend that runs alone."""
    return {
        v
        for c in pod.containers()
        for cp in c.get("ports") or []
        if cp.get("name") == "cluster"
        for v in (cp["name"], cp["containerPort"])
    }


def check_network_policies(p: Problems, render: Render, namespace: str) -> None:
    policies = list(render.by_kind.get("NetworkPolicy", {}).values())
    default_deny = [
        np
        for np in policies
        if np["spec"].get("podSelector") in ({}, None)
        and set(np["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
        and not np["spec"].get("ingress")
        and not np["spec"].get("egress")
    ]
    if not default_deny:
        p.add("NetworkPolicy", "no default-deny policy (podSelector {}, Ingress and Egress, no rules)")
    backend_names = {"nats", "postgres", "redis"}
    for pod in render.pods:
        if pod.labels.get("app.kubernetes.io/component") not in {"service", "setup"}:
            continue
        service = pod.labels.get("app.kubernetes.io/name")
        is_service = pod.labels.get("app.kubernetes.io/component") == "service"
        scraped = False  # some policy admits the monitoring namespace to its ops port
        for np in policies:
            if not policy_selects(np, pod):
                continue
            where = f"NetworkPolicy/{np['metadata']['name']} on {pod.owner}"
            for rule in np["spec"].get("ingress") or []:
                for peer in rule.get("from") or [{}]:
                    problem = service_peer_problem(pod, peer, rule)
                    if problem:
                        p.add(where, problem)
                    elif namespace_of(peer) == MONITORING_NAMESPACE and applies_to_ingress(np):
                        scraped = True
                if not is_service:
                    p.add(where, "admits traffic to a pod that serves none")
            for rule in np["spec"].get("egress") or []:
                for peer in rule.get("to") or [{}]:
                    if "ipBlock" in peer:
                        ports = {pt.get("port") for pt in rule.get("ports") or []}
                        if not ports or not ports <= LEAVING_SERVICES.get(service or "", set()):
                            leaving = " and ".join(
                                f"{name} (on {'/'.join(map(str, sorted(allowed)))})"
                                for name, allowed in LEAVING_SERVICES.items()
                            )
                            p.add(
                                where,
                                f"lets {service} leave the cluster ({peer['ipBlock'].get('cidr')}, ports {sorted(ports) or 'all'}); only {leaving} may",
                            )
                        continue
                    target = (peer.get("podSelector") or {}).get("matchLabels") or {}
                    if "namespaceSelector" not in peer and service in SIMULATORS.get(
                        target.get("app.kubernetes.io/name", ""), set()
                    ):
                        continue  # the simulator of the outside system it may leave for
                    if not is_dns(peer) and (
                        "namespaceSelector" in peer
                        or target.get("app.kubernetes.io/name") not in backend_names
                    ):
                        p.add(
                            where,
                            f"lets {service} reach {peer or 'anywhere'}; services may reach only NATS, Postgres, Redis and DNS",
                        )
        if is_service and not scraped:
            p.add(
                pod.owner,
                f"no NetworkPolicy admits the {MONITORING_NAMESPACE} namespace to its {OPS_PORT} port: under "
                "the default deny Prometheus cannot scrape /metrics",
            )
    # Each backend takes traffic only from ticketing processes, and only on the ports it names;
    # a clustered backend's servers (NATS) also from one another, on their cluster port alone.
    # A backend reaches nothing but DNS and, clustered, its own servers on that port.
    ticketing_pods = [
        q for q in render.pods if q.labels.get("app.kubernetes.io/component") in {"service", "setup"}
    ]
    for pod in render.pods:
        name = pod.labels.get("app.kubernetes.io/name")
        if name not in backend_names:
            continue
        peer_ports = cluster_ports(pod)
        # Where a backend also admits or reaches what it is not allowed to, say what it may.
        also = f", or {name}'s own pods on their cluster port" if peer_ports else ""
        # Under the default deny, a cluster's pods must be let both out to and in from one another.
        admits_own = reaches_own = False
        for np in policies:
            if not policy_selects(np, pod):
                continue
            where = f"NetworkPolicy/{np['metadata']['name']} on {pod.owner}"
            for rule in np["spec"].get("ingress") or []:
                if not rule.get("ports"):
                    p.add(where, f"admits traffic to every port of {name}")
                for peer in rule.get("from") or [{}]:
                    if own_pods(render, peer, rule, name, peer_ports):
                        admits_own = True
                        continue
                    selected = selected_by(render, peer)
                    if (
                        set(peer) != {"podSelector"}
                        or not selected
                        or not all(q in ticketing_pods for q in selected)
                    ):
                        p.add(
                            where,
                            f"admits {peer or 'anyone'} on {port_list(rule)}: only ticketing pods may reach {name}{also}",
                        )
            for rule in np["spec"].get("egress") or []:
                for peer in rule.get("to") or [{}]:
                    if own_pods(render, peer, rule, name, peer_ports):
                        reaches_own = True
                    elif not is_dns(peer):
                        p.add(
                            where,
                            f"lets {name} reach {peer or 'anywhere'} on {port_list(rule)}: only DNS{also}",
                        )
        if peer_ports and pod.workload["spec"].get("replicas", 1) > 1 and not (admits_own and reaches_own):
            p.add(
                pod.owner,
                f"no NetworkPolicy lets its pods {'reach' if admits_own else 'admit'} one another on "
                "their cluster port: under the default deny they cannot form a cluster",
            )


def selected_by(render: Render, peer: dict) -> list[Pod]:
    """The pods of the namespace a NetworkPolicy peer's podSelector selects."""
    selector = peer.get("podSelector")
    return [q for q in render.pods if selector is not None and matches(selector, q.labels)]


def own_pods(render: Render, peer: dict, rule: dict, name: str, peer_ports: set[int | str]) -> bool:
    """Whether a rule's peer is the backend's own pods (by name), on its cluster port alone."""
    selected = selected_by(render, peer)
    ports = {pt.get("port") for pt in rule.get("ports") or []}
    return (
        set(peer) == {"podSelector"}
        and bool(selected)
        and all(q.labels.get("app.kubernetes.io/name") == name for q in selected)
        and bool(peer_ports)
        and bool(ports)
        and ports <= peer_ports
    )


def named_port(pod: Pod, name: str) -> int | None:
    """The number of the pod's container port called `name`."""
    for c in pod.spec.get("containers") or []:
        for cp in c.get("ports") or []:
            if cp.get("name") == name:
                return cp.get("containerPort")
    return None


def service_pods(render: Render) -> list[Pod]:
    """The pod templates of the services' Deployments (service-template's label)."""
    return [
        q
        for q in render.pods
        if q.kind == "Deployment" and q.labels.get("app.kubernetes.io/component") == "service"
    ]


def namespace_of(peer: dict) -> str | None:
    """The namespace a NetworkPolicy peer admits, named by kubernetes.io/metadata.name, with all
    its pods or those of a podSelector beside it; None for any other peer."""
    selector = peer.get("namespaceSelector") or {}
    if set(peer) - {"namespaceSelector", "podSelector"} or set(selector) != {"matchLabels"}:
        return None
    labels = selector["matchLabels"] or {}
    return labels.get("kubernetes.io/metadata.name") if len(labels) == 1 else None


def applies_to_ingress(np: dict) -> bool:
    """Whether the policy's ingress rules count (policyTypes, when given, names Ingress)."""
    return "Ingress" in (np["spec"].get("policyTypes") or ["Ingress"])


def rule_reaches(rule: dict, name: str, number: int | None) -> bool:
    """Whether a NetworkPolicy rule admits TCP to the container port `name` (number `number`):
    a rule without ports admits every port."""
    if not rule.get("ports"):
        return True
    for pt in rule["ports"]:
        if pt.get("protocol", "TCP") != "TCP":
            continue
        port = pt.get("port")
        if port is None or port == name:
            return True
        if isinstance(port, int) and number is not None and port <= number <= pt.get("endPort", port):
            return True
    return False


def rule_only(rule: dict, name: str, number: int | None) -> bool:
    """Whether a NetworkPolicy rule admits the container port `name` (number `number`) and no
    other."""
    ports = rule.get("ports") or []
    return bool(ports) and all(
        pt.get("port") in {name, number} and pt.get("endPort", pt.get("port")) == pt.get("port")
        for pt in ports
    )


def service_peer_problem(pod: Pod, peer: dict, rule: dict) -> str | None:
    """What is wrong with a NetworkPolicy admitting `peer` to a ticketing pod: the ingress
    controller's namespace may reach the http port alone, the monitoring namespace the ops port
    alone (/metrics), nothing else anything."""
    http, ops = named_port(pod, HTTP_PORT), named_port(pod, OPS_PORT)
    namespace = namespace_of(peer)
    if namespace == INGRESS_NAMESPACE:
        if rule_reaches(rule, OPS_PORT, ops):
            return (
                f"admits the {INGRESS_NAMESPACE} namespace to the {OPS_PORT} port ({ops}) by "
                f"{port_list(rule)}: /metrics would be public; it may reach the {HTTP_PORT} port alone"
            )
        if not rule_only(rule, HTTP_PORT, http):
            return (
                f"admits the {INGRESS_NAMESPACE} namespace on {port_list(rule)}; it may reach the "
                f"{HTTP_PORT} port ({http}) alone"
            )
        return None
    if namespace == MONITORING_NAMESPACE:
        if not rule_only(rule, OPS_PORT, ops):
            return (
                f"admits the {MONITORING_NAMESPACE} namespace on {port_list(rule)}; Prometheus may reach "
                f"the {OPS_PORT} port ({ops}) alone"
            )
        return None
    if rule_reaches(rule, OPS_PORT, ops):
        return (
            f"admits {peer or 'anyone'} to the {OPS_PORT} port ({ops}) by {port_list(rule)}: only the "
            f"{MONITORING_NAMESPACE} namespace may reach /metrics"
        )
    return (
        f"admits traffic from {peer or 'anywhere'}; only the {INGRESS_NAMESPACE} namespace (port "
        f"{HTTP_PORT}) and the {MONITORING_NAMESPACE} namespace (port {OPS_PORT}) may reach a service"
    )


def check_scrape_annotations(p: Problems, render: Render) -> None:
    """Every service pod tells an annotation-driven Prometheus to scrape /metrics on its port
    named ops."""
    for pod in service_pods(render):
        annotations = (pod.workload["spec"]["template"].get("metadata") or {}).get("annotations") or {}
        ops = named_port(pod, OPS_PORT)
        if ops is None:
            p.add(pod.owner, f"no container port named {OPS_PORT}: nothing for Prometheus to scrape")
        expected = {**SCRAPE_ANNOTATIONS, SCRAPE_PORT_ANNOTATION: None if ops is None else str(ops)}
        for key, value in expected.items():
            have = annotations.get(key)
            if have is None:
                p.add(pod.owner, f"pod template lacks the annotation {key}: Prometheus would not scrape it")
            elif key == SCRAPE_PORT_ANNOTATION and value is not None and have != value:
                p.add(
                    pod.owner,
                    f"annotation {key} is {have!r} but its container port named {OPS_PORT} is {ops}: "
                    f"Prometheus would scrape another port than the one that serves {METRICS_PATH}",
                )
            elif value is not None and have != value:
                p.add(pod.owner, f"annotation {key} is {have!r}, expected {value!r}")


def check_ingress_ports(p: Problems, render: Render) -> None:
    """The Ingress reaches each service through the Service port named http alone, which leads
    to the containers' http port; no Service leads to a service pod's ops port (/metrics)."""
    for ing in render.by_kind.get("Ingress", {}).values():
        where = f"Ingress/{ing['metadata']['name']}"
        for rule in ing["spec"].get("rules") or []:
            for hp in (rule.get("http") or {}).get("paths") or []:
                backend = hp["backend"].get("service") or {}
                svc = render.get("Service", backend.get("name", ""))
                sp = None if svc is None else service_port(svc, backend.get("port") or {})
                if sp is not None and sp.get("name") != HTTP_PORT:  # None: check_render says so
                    p.add(
                        where,
                        f"{hp['path']} points at port {sp.get('name') or sp['port']} of Service "
                        f"{backend['name']}, not its {HTTP_PORT} port",
                    )
    services = service_pods(render)
    for svc in render.by_kind.get("Service", {}).values():
        where = f"Service/{svc['metadata']['name']}"
        for pod in [q for q in render.selected_pods(svc) if q in services]:
            http, ops = named_port(pod, HTTP_PORT), named_port(pod, OPS_PORT)
            for sp in svc["spec"].get("ports") or []:
                target = sp.get("targetPort", sp["port"])
                if target in {OPS_PORT, ops}:
                    p.add(
                        where,
                        f"port {sp['port']} leads to the {OPS_PORT} port of {pod.owner}: {METRICS_PATH} "
                        f"must be reachable from the {MONITORING_NAMESPACE} namespace alone, through no Service",
                    )
                elif sp.get("name") == HTTP_PORT and target not in {HTTP_PORT, http}:
                    p.add(where, f"port {HTTP_PORT} leads to {target}, not the {HTTP_PORT} port of {pod.owner}")


def operator_pod_monitors() -> list[dict]:
    """The PodMonitors of k8s/components/prometheus-operator as written: no overlay here includes
    it (kind and minikube have no Prometheus Operator), so it is held against theirs."""
    docs: list[dict] = []
    for path in sorted(PROMETHEUS_OPERATOR.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "PodMonitor"]
    return docs


def check_pod_monitors(p: Problems, render: Render, namespace: str) -> None:
    """The PodMonitors (the render's, else the component's) select every service pod, in its
    namespace, and scrape /metrics on the port named ops."""
    monitors = list(render.by_kind.get("PodMonitor", {}).values()) or operator_pod_monitors()
    if not monitors:
        p.add(str(PROMETHEUS_OPERATOR.relative_to(ROOT)), "has no PodMonitor")
    for m in monitors:
        where = f"PodMonitor/{m['metadata']['name']}"
        spec = m.get("spec") or {}
        namespaces = spec.get("namespaceSelector") or {}
        if not namespaces.get("any") and namespace not in (
            namespaces.get("matchNames") or [m["metadata"].get("namespace")]
        ):
            p.add(where, f"does not look in namespace {namespace}")
        missed = [q.owner for q in service_pods(render) if not matches(spec.get("selector") or {}, q.labels)]
        if missed:
            p.add(where, f"does not select {', '.join(missed)}")
        endpoints = spec.get("podMetricsEndpoints") or []
        if not any(e.get("port") == OPS_PORT and e.get("path", METRICS_PATH) == METRICS_PATH for e in endpoints):
            p.add(where, f"no podMetricsEndpoints entry scrapes {METRICS_PATH} on port {OPS_PORT}")


def check_render(
    p: Problems,
    overlay: str,
    docs: list[dict],
    binary: Binary,
    config: ConfigVars,
    routes: Routes,
    image_uid: int | None,
) -> dict[str, int]:
    render = Render(docs)
    pf = Problems()  # collected per overlay, prefixed below

    namespaces = list(render.by_kind.get("Namespace", {}))
    namespace = namespaces[0] if len(namespaces) == 1 else "ticketing"
    if len(namespaces) != 1:
        pf.add("Namespace", f"expected one Namespace, found {namespaces}")
    for d in render.docs:
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != namespace:
            pf.add(f"{d['kind']}/{d['metadata']['name']}", f"not in namespace {namespace}")

    # Which service each Deployment serves, from its resolved command.
    serves: dict[str, str] = {}  # Deployment name -> service (one per pod in Kubernetes)
    stream_replicas: dict[str, EnvVar | None] = {}  # ticketing container -> its NATS_REPLICAS
    ticketing: list[Ticketing] = []
    standalone: set[str] = set()  # the workloads that run a STANDALONE_COMMANDS subcommand
    for pod in render.pods:
        for c in pod.containers():
            if not is_ticketing(c):
                continue
            where = f"{pod.owner} container {c['name']}"
            if standalone_command(c):
                check_standalone_container(pf, where, render, pod, c, binary)
                standalone.add(pod.owner)
                continue
            args, env = check_ticketing_container(pf, where, render, pod, c, binary, config, namespace)
            ticketing.append(Ticketing(where, pod, c, args, env))
            stream_replicas[where] = env.get(NATS_REPLICAS)
            if pod.kind == "Deployment" and args[:1] == ["serve"]:
                if len(args) != 2:
                    pf.add(
                        where,
                        f"runs `ticketing {' '.join(args)}`: one service per Deployment, so each scales and fails alone",
                    )
                else:
                    serves[pod.name] = args[1]
            if pod.spec.get("enableServiceLinks") is not False:
                pf.add(
                    pod.owner,
                    "enableServiceLinks is not false: Service links would add TICKETING_*_PORT variables",
                )
        check_security(pf, pod, image_uid)

    for service in render.by_kind.get("Service", {}).values():
        if not render.selected_pods(service):
            pf.add(f"Service/{service['metadata']['name']}", "selects no pod")
        for sp in service["spec"].get("ports") or []:
            if not target_reachable(render, service, sp):
                pf.add(
                    f"Service/{service['metadata']['name']}", f"port {sp['port']} reaches no container port"
                )

    # service name -> Services that reach its Deployment
    services_of: dict[str, set[str]] = {}
    deployments = render.by_kind.get("Deployment", {})
    for svc in render.by_kind.get("Service", {}).values():
        for pod in render.selected_pods(svc):
            if pod.kind == "Deployment" and pod.name in serves:
                services_of.setdefault(serves[pod.name], set()).add(svc["metadata"]["name"])

    ingresses = list(render.by_kind.get("Ingress", {}).values())
    paths: list[tuple[str, str, str]] = []  # (path, Service name, ticketing service)
    for ing in ingresses:
        where = f"Ingress/{ing['metadata']['name']}"
        if ing["spec"].get("ingressClassName") != "nginx":
            pf.add(where, "ingressClassName is not nginx")
        for rule in ing["spec"].get("rules") or []:
            for hp in (rule.get("http") or {}).get("paths") or []:
                path, backend = hp["path"], hp["backend"].get("service") or {}
                if hp.get("pathType") != "Prefix":
                    pf.add(where, f"{path}: pathType {hp.get('pathType')}, expected Prefix")
                svc = render.get("Service", backend.get("name", ""))
                if svc is None:
                    pf.add(
                        where,
                        f"{path} points at Service {backend.get('name')}, which the manifests do not have",
                    )
                    continue
                sp = service_port(svc, backend.get("port") or {})
                if sp is None:
                    pf.add(
                        where,
                        f"{path} points at port {backend.get('port')} of Service {backend['name']}, which it does not have",
                    )
                    continue
                selected = render.selected_pods(svc)
                if selected and all(q.owner in standalone for q in selected):
                    # A simulator's own pages (pg-sim's checkout): outside the route table, and
                    # over none of its prefixes.
                    for prefix, name in routes.prefixes:
                        if path.rstrip("/") == prefix.rstrip("/") or any(
                            a.startswith(b.rstrip("/") + "/") for a, b in ((path, prefix), (prefix, path))
                        ):
                            pf.add(
                                where,
                                f"{path} goes to Service {backend['name']}, which runs no service, over "
                                f"the route table's {prefix} ({name})",
                            )
                    continue
                owners = {serves.get(pod.name) for pod in selected if pod.kind == "Deployment"}
                owners.discard(None)
                if len(owners) != 1:
                    pf.add(
                        where,
                        f"{path}: Service {backend['name']} does not reach exactly one ticketing service ({sorted(owners)})",
                    )
                    continue
                paths.append((path, backend["name"], owners.pop()))

    routed = [(path, svc) for path, _, svc in paths if path != CATCH_ALL]
    expected = list(routes.prefixes)
    for route in sorted(set(expected) - set(routed)):
        pf.add("Ingress", f"`ticketing routes` sends {route[0]} to {route[1]}; the Ingress does not")
    for route in sorted(set(routed) - set(expected)):
        pf.add("Ingress", f"sends {route[0]} to {route[1]}; `ticketing routes` does not")
    caught = sorted({svc for path, _, svc in paths if path == CATCH_ALL})
    if caught != [routes.catch_all]:
        pf.add(
            "Ingress",
            f"sends {CATCH_ALL} (every other path) to {', '.join(caught) or 'nothing'}; "
            f"`ticketing routes` sends it to {routes.catch_all}",
        )
    order = [path for path, _, _ in paths]
    for i, path in enumerate(order):
        for later in order[i + 1 :]:
            if later != path and later.startswith(path.rstrip("/") + "/"):
                pf.add("Ingress", f"{later} comes after {path}: list more specific paths first")

    for name in binary.services:
        where = f"service {name}"
        deps = [d for d, s in serves.items() if s == name]
        if not deps:
            pf.add(where, f"no Deployment runs `ticketing serve {name}`")
        if not services_of.get(name):
            pf.add(where, "no Service reaches its Deployment")
        if not any(svc == name for path, _, svc in paths if path != CATCH_ALL):
            pf.add(where, "no Ingress path leads to it")
        if name in HOT_SERVICES:
            for dep in deps:
                hpas = [
                    h
                    for h in render.by_kind.get("HorizontalPodAutoscaler", {}).values()
                    if h["spec"]["scaleTargetRef"].get("kind") == "Deployment"
                    and h["spec"]["scaleTargetRef"]["name"] == dep
                ]
                if not hpas:
                    pf.add(where, f"hot service without a HorizontalPodAutoscaler for Deployment/{dep}")
                for h in hpas:
                    if h["apiVersion"] != "autoscaling/v2" or not any(
                        (m.get("resource") or {}).get("name") == "cpu" for m in h["spec"].get("metrics") or []
                    ):
                        pf.add(
                            f"HorizontalPodAutoscaler/{h['metadata']['name']}",
                            "should be autoscaling/v2 on CPU",
                        )
                    if h["spec"].get("minReplicas", 1) < 2:
                        pf.add(
                            f"HorizontalPodAutoscaler/{h['metadata']['name']}",
                            "minReplicas below 2 leaves a PodDisruptionBudget nothing to keep",
                        )
                if hpas and "replicas" in deployments[dep]["spec"]:
                    pf.add(
                        f"Deployment/{dep}",
                        "sets replicas although an HPA scales it: every apply would reset the HPA's count",
                    )
                pod = next(q for q in render.pods if q.kind == "Deployment" and q.name == dep)
                if not any(
                    matches(b["spec"].get("selector"), pod.labels)
                    for b in render.by_kind.get("PodDisruptionBudget", {}).values()
                ):
                    pf.add(where, "hot service without a PodDisruptionBudget")

    check_private_keys(pf, render, ticketing)
    check_db_roles(pf, render, binary, ticketing)
    prefix = deployment_prefix(pf, ticketing)
    check_nats_users(pf, render, binary, ticketing, prefix)
    check_redis_users(pf, render, binary, ticketing, prefix)
    check_network_policies(pf, render, namespace)
    check_scrape_annotations(pf, render)
    check_ingress_ports(pf, render)
    check_pod_monitors(pf, render, namespace)
    check_nats_config(pf, render)
    check_nats_cluster(pf, render, namespace, stream_replicas)
    check_redis(pf, render)

    for item in pf.items:
        p.items.append(f"{overlay}: {item}")
    return {kind: len(objs) for kind, objs in render.by_kind.items()}


def check_nats_copy(p: Problems) -> None:
    # kustomize reads no file outside its root, so the manifests carry a copy of the one source.
    copy = ROOT / "k8s/base/nats/nats-server.conf"
    if not copy.is_file() or copy.read_text() != (ROOT / "nats/nats-server.conf").read_text():
        p.add(
            str(copy.relative_to(ROOT)),
            "differs from nats/nats-server.conf (the one source): cp nats/nats-server.conf k8s/base/nats/",
        )


def check_dev_key_copy(p: Problems) -> None:
    # The development Secrets carry a copy of the development private key (the public one's copy
    # is held equal by a test of shared/platform).
    if not DEV_PRIVATE_KEY_COPY.is_file() or DEV_PRIVATE_KEY_COPY.read_text() != DEV_PRIVATE_KEY:
        p.add(
            str(DEV_PRIVATE_KEY_COPY.relative_to(ROOT)),
            "differs from shared/platform/dev-keys/jwt-ed25519.pem (the one source): "
            f"cp shared/platform/dev-keys/jwt-ed25519.pem {DEV_PRIVATE_KEY_COPY.relative_to(ROOT)}",
        )


def check_nats_config(p: Problems, render: Render) -> None:
    source = (ROOT / "nats/nats-server.conf").read_text()
    sts = render.get("StatefulSet", "nats")
    if sts is None:
        p.add("NATS", "no StatefulSet named nats")
        return
    spec = sts["spec"]["template"]["spec"]
    mounted = [v["configMap"]["name"] for v in spec.get("volumes") or [] if "configMap" in v]
    confs = [
        (render.get("ConfigMap", name) or {}).get("data", {}).get("nats-server.conf") for name in mounted
    ]
    if source not in confs:
        p.add("StatefulSet/nats", "mounts no ConfigMap whose nats-server.conf equals nats/nats-server.conf")


# nats-server's flags that take no value (Go's flag package: -flag or -flag=value only), and the
# short or other names of those this checker reads.
NATS_BOOL_FLAGS = {
    *("js", "jetstream", "D", "V", "VV", "DV", "DVV", "T", "logtime", "logtime_utc", "s", "syslog"),
    *("tls", "tlsverify", "no_advertise", "h", "help", "help_tls", "v", "version", "t"),
}
NATS_FLAG_NAMES = {"c": "config", "sd": "store_dir", "n": "server_name", "name": "server_name"}


def nats_flags(args: list[str]) -> dict[str, str]:
    """nats-server's command-line flags (-name or --name, the value as the next word or after =),
    by their long names; the last of a repeated flag wins."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if not word.startswith("-"):
            continue
        name, eq, value = word.lstrip("-").partition("=")
        if not eq and name not in NATS_BOOL_FLAGS and i < len(args):
            value = args[i]
            i += 1
        flags[NATS_FLAG_NAMES.get(name, name)] = value
    return flags


def conf_setting(conf: str, key: str) -> str | None:
    """A `key: value` of a nats-server configuration, at any depth (the last one)."""
    found = re.findall(rf'^\s*{key}\s*[:=]?\s*"?([^"\s#]+)"?', re.sub(r"#.*", "", conf), re.M)
    return found[-1] if found else None


def downward_env(c: dict, pod: Pod, pod_name: str, namespace: str) -> dict[str, EnvVar]:
    """A container's literal and downward-API variables, as one pod of its workload sees them."""
    env: dict[str, EnvVar] = {}
    for e in c.get("env") or []:
        if "value" in e:
            env[e["name"]] = EnvVar(expand(e["value"], env), "literal")
            continue
        path = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "")
        known = {"metadata.name": pod_name, "metadata.namespace": namespace}
        env[e["name"]] = EnvVar(known.get(path, label_field(path, pod.labels)), "field")
    return env


def volume_at(c: dict, path: str) -> str | None:
    """The volume a container has at `path`: the one of its mounts deepest above it."""
    mounts = [
        m
        for m in c.get("volumeMounts") or []
        if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    return max(mounts, key=lambda m: len(m["mountPath"]))["name"] if mounts else None


def claim_templates(pod: Pod) -> set[str]:
    if pod.kind != "StatefulSet":
        return set()
    return {v["metadata"]["name"] for v in pod.workload["spec"].get("volumeClaimTemplates") or []}


def not_persistent(render: Render, pod: Pod, volume: str | None) -> str | None:
    """Why the pod's volume does not outlive the pod, or None when it does."""
    if volume is None:
        return "no volume (the container's own filesystem)"
    if volume in claim_templates(pod):
        return None
    spec = next((v for v in pod.spec.get("volumes") or [] if v["name"] == volume), None)
    if spec is None:
        return f"volume {volume}, which the pod does not define"
    claim = (spec.get("persistentVolumeClaim") or {}).get("claimName")
    if claim is None:
        kind = next((k for k in spec if k != "name"), "unknown")
        return f"volume {volume} ({kind}), which goes with the pod"
    if render.get("PersistentVolumeClaim", claim) is None:
        return f"volume {volume}: PersistentVolumeClaim {claim}, which the manifests do not have"
    return None


def check_nats_cluster(
    p: Problems, render: Render, namespace: str, stream_replicas: dict[str, EnvVar | None]
) -> None:
    """The NATS StatefulSet runs the project's nats-server version, keeps each server's store on
    a volume of its own, forms one cluster of all its pods, and has as many servers as every
    ticketing process keeps replicas of each stream."""
    sts = render.get("StatefulSet", "nats")
    if sts is None:
        return  # check_nats_config says so
    where = "StatefulSet/nats"
    pod = next(q for q in render.pods if q.owner == where)
    containers = [c for c in pod.spec.get("containers") or [] if image_name(c) == "nats"]
    if len(containers) != 1:
        p.add(where, f"expected one container of the nats image, found {len(containers)}")
        return
    c = containers[0]
    cw = f"{where} container {c['name']}"
    replicas = sts["spec"].get("replicas", 1)

    version = nats_version()
    image = c.get("image", "")
    m = re.fullmatch(
        r"(?:docker\.io/(?:library/)?)?nats:([^@]+?)(?:-alpine)?(?:@sha256:[0-9a-f]{64})?", image
    )
    if not m or m.group(1) != version:
        p.add(
            cw,
            f"image {image}: expected nats:{version} or nats:{version}-alpine (nats/nats-server.version, "
            "the one nats-server version of the dev stack, CI and Kubernetes)",
        )

    # Every ticketing process sets each stream's replicas at start: all must say the same, and
    # that is the number of servers (more, and no stream can be placed; fewer, and a server that
    # holds no replica cannot stand in for one that is down).
    values: dict[str, list[str]] = {}  # value -> the containers that get it ("" for none)
    for w, var in stream_replicas.items():
        if var is not None and var.value is None:
            p.add(w, f"{NATS_REPLICAS} is not known before the pod runs")
        else:
            values.setdefault("" if var is None else var.value.strip(), []).append(w)
    unset = values.pop("", [])
    if unset:
        p.add(
            NATS_REPLICAS,
            f"not set for {', '.join(unset)}: each would set every stream to one replica (the default)",
        )
    if len(values) > 1:
        fewest_first = sorted(values.items(), key=lambda kv: len(kv[1]))
        said = "; ".join(f"{v} in {', '.join(ws)}" for v, ws in fewest_first)
        p.add(
            NATS_REPLICAS,
            f"the ticketing workloads disagree ({said}): each process would rescale the streams to its own",
        )
    for v, ws in sorted(values.items()):
        if v != str(replicas):
            p.add(where, f"runs {replicas} servers, but {NATS_REPLICAS} is {v} for {', '.join(ws)}")

    # Each pod's flags, with its own name and namespace in place of $(POD_NAME) and the like.
    conf = (ROOT / "nats/nats-server.conf").read_text()
    said_once: set[str] = set()

    def once(what: str) -> None:  # the same problem in every pod is one problem
        if what not in said_once:
            said_once.add(what)
            p.add(cw, what)

    pods = statefulset_pods(sts)
    flags_of: dict[str, dict[str, str]] = {}
    for name in pods:
        env = downward_env(c, pod, name, namespace)
        args = []
        for a in (c.get("command") or [])[1:] + (c.get("args") or []):
            value = expand(a, env)
            if value is None or re.search(r"\$\(\w+\)", value):
                once(f"argument {a!r} is not known before the pod runs")
                value = a
            args.append(value)
        flags_of[name] = nats_flags(args)
    first = flags_of[pods[0]] if pods else {}

    store = first.get("store_dir") or conf_setting(conf, "store_dir")
    volume = volume_at(c, store) if store else None
    if not store:
        once(
            "no JetStream store directory (--store_dir, or store_dir in nats-server.conf): "
            "the streams would live in a temporary directory"
        )
    elif volume not in claim_templates(pod):
        why = not_persistent(render, pod, volume) or f"volume {volume}, which every server would share"
        once(f"the JetStream store {store} is on {why}, not on a volume of volumeClaimTemplates")

    if replicas < 2:
        return
    if sts["spec"].get("podManagementPolicy") != "Parallel":
        p.add(
            where,
            "podManagementPolicy is not Parallel: started one at a time, the first server would wait "
            "forever, since a server starts only once it sees a meta leader, which needs a quorum",
        )
    governing = render.get("Service", sts["spec"].get("serviceName", ""))
    if governing is None or governing["spec"].get("clusterIP") != "None":
        p.add(
            where,
            f"serviceName {sts['spec'].get('serviceName')!r} is not a headless Service of the manifests: "
            "the servers have no names to find one another by",
        )
    elif governing["spec"].get("publishNotReadyAddresses") is not True:
        p.add(
            f"Service/{governing['metadata']['name']}",
            "publishNotReadyAddresses is not true: the servers' names would resolve only once they are "
            "ready, and they get ready only once they have found one another",
        )
    for probe in ("livenessProbe", "readinessProbe"):
        path = ((c.get(probe) or {}).get("httpGet") or {}).get("path", "")
        if path.split("?")[0] == "/healthz" and "js-" not in path:
            once(
                f"{probe} GETs {path}, which fails on every server while the cluster has no meta "
                "leader: use /healthz?js-enabled-only=true or /healthz?js-server-only=true"
            )

    names = [flags.get("server_name") or conf_setting(conf, "server_name") for flags in flags_of.values()]
    shared = sorted({n for n in names if n is not None and names.count(n) > 1})
    if None in names or shared:
        what = f"servers would share the name {', '.join(shared)}" if shared else "a server has no name"
        once(f"{what}: JetStream needs a lasting name per server (--server_name $(POD_NAME))")
    for flag in ("cluster_name", "cluster", "routes"):
        if not first.get(flag):
            once(f"no --{flag}: the {replicas} servers would not form one cluster")
    cluster_port = urlsplit(first.get("cluster", "")).port
    if first.get("cluster") and cluster_port not in {cp.get("containerPort") for cp in c.get("ports") or []}:
        once(f"--cluster {first['cluster']}: no container port {cluster_port}")
    for flags in flags_of.values():
        if not flags.get("routes"):
            continue
        named: set[str | None] = set()
        for url in filter(None, (u.strip() for u in flags["routes"].split(","))):
            parts = urlsplit(url)
            target = resolve_host(render, parts.hostname or "", namespace)
            if isinstance(target, str) or target.workload is None or target.workload.owner != where:
                why = target if isinstance(target, str) else f"not a pod of {where}"
                once(f"--routes names {url}: {why}")
                continue
            if parts.port != cluster_port:
                once(f"--routes names {url}, not the cluster port {cluster_port} (--cluster)")
            named.add(target.pod)
        missing = [q for q in pods if q not in named]
        if missing:
            once(
                f"--routes does not name {', '.join(missing)}: each of the {replicas} servers must reach "
                "every other"
            )


def check_redis(p: Problems, render: Render) -> None:
    """Redis keeps an append-only file on a volume that outlives the pod."""
    pods = [q for q in render.pods if q.labels.get("app.kubernetes.io/name") == "redis"]
    if not pods:
        p.add("Redis", "no workload runs pods labelled app.kubernetes.io/name=redis")
    for pod in pods:
        for c in pod.spec.get("containers") or []:
            if image_name(c) != "redis":
                continue
            cw = f"{pod.owner} container {c['name']}"
            options = redis_options(c)
            appendonly = " ".join(options.get("appendonly", ["no"]))
            if appendonly.lower() != "yes":
                p.add(
                    cw,
                    f"runs with appendonly {appendonly}, not --appendonly yes: a restart would empty "
                    "the waiting room, the rankings and the Redis inbox",
                )
            directory = " ".join(options.get("dir", [])) or REDIS_DEFAULT_DIR
            why = not_persistent(render, pod, volume_at(c, directory))
            if why:
                p.add(cw, f"keeps its files in {directory} on {why}, not on a persistent volume")
            elif pod.kind == "Deployment":
                spec = pod.workload["spec"]
                if (spec.get("strategy") or {}).get("type") != "Recreate":
                    p.add(
                        pod.owner,
                        "strategy is not Recreate: a rolling update would start a second Redis "
                        "while the first holds the volume",
                    )
                if spec.get("replicas", 1) > 1:
                    p.add(pod.owner, "more than one replica: each would be a Redis of its own")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, type=Path, help="the built ticketing binary")
    parser.add_argument(
        "renders", nargs="+", metavar="OVERLAY=FILE", help="`kubectl kustomize` output per overlay"
    )
    args = parser.parse_args()

    binary = read_binary(args.bin)
    config = read_config()
    routes = read_routes(args.bin)
    p = Problems()
    image_uid = check_dockerfile(p, binary)
    check_nats_copy(p)
    check_dev_key_copy(p)
    summaries = []
    for item in args.renders:
        overlay, _, path = item.partition("=")
        docs = list(yaml.safe_load_all(Path(path).read_text()))
        counts = check_render(p, overlay, docs, binary, config, routes, image_uid)
        summaries.append(f"{overlay}: {sum(counts.values())} objects")

    if p.items:
        for item in p.items:
            print(f"check-deploy: {item}", file=sys.stderr)
        print(f"check-deploy: {len(p.items)} problem(s)", file=sys.stderr)
        return 1
    print(
        f"check-deploy: manifests match the code ({'; '.join(summaries)}; {len(binary.services)} "
        f"services, {len(routes.prefixes)} routes, {len(config.read)} TICKETING_* variables); Dockerfile ok"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
