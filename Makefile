# markdown-manager-ops — the user interface is these targets; each one calls the `mmops` CLI.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What the venv installs: the package with its test tools; `make demo` uses the package alone.
EXTRAS ?= [test]

# Variables users set (see README): HOST, SSH_CONFIG, ENV_FILE, OPS_DIR, BACKUP_DIR, BACKUP, YES, TABLES
HOST ?= $(REMOTE_USER_HOST)
ENV_FILE ?= $(PROD_ENV_FILE)
BACKUP_DIR ?= ./backups
export HOST SSH_CONFIG ENV_FILE OPS_DIR BACKUP_DIR BACKUP YES FORCE TABLES EXCLUDE_TABLES ACCEPT_NEW_HOST_KEY
# Repository, encryption and retention (see README): credentials stay in the AWS_*/GOOGLE_* env.
export REPO REPO_ENV_FILE ENCRYPT_TO AGE_IDENTITY LOCK_DAYS KEEP KEEP_LOCAL

.PHONY: venv test lint bench demo sandbox sandbox-stop lock clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.$(EXTRAS)'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check ops tests scripts
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench $(if $(SIZE),--size $(SIZE))
	$(BIN)/python -m tests.repository.bench_storage $(or $(STORAGE_MB),512)

# The exact runtime pins servers install: resolved in a scratch venv holding only the package's
# own dependencies (never the test tools of .venv).
lock: $(STAMP)
	@rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install -q .
	.lockenv/bin/pip freeze --exclude markdown-manager-ops > ops/requirements.lock
	@rm -rf .lockenv

clean:
	rm -rf $(VENV) .venv-demo dist build *.egg-info

# The embedded default: throwaway PostgreSQL + real sshd on 127.0.0.1 (state in ./.state/sandbox).
# As root, a missing OpenSSH server is installed with apt-get; otherwise the command is printed.
sandbox: $(STAMP)
	@if [ ! -x /usr/sbin/sshd ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing openssh-server (needed by the sandbox) ..."; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssh-server && \
	    { service ssh stop >/dev/null 2>&1 || true; }; \
	  else \
	    echo "The sandbox needs OpenSSH server: sudo apt-get install -y openssh-server" >&2; exit 3; \
	  fi; \
	fi
	$(BIN)/mmops sandbox start

sandbox-stop: $(STAMP)
	$(BIN)/mmops sandbox stop

# The remote-ops agent over SSH (mmops remote ...). Variables reach the CLI through the
# environment (HOST, SSH_CONFIG, ENV_FILE, OPS_DIR, BACKUP_DIR, BACKUP, YES, TABLES,
# ACCEPT_NEW_HOST_KEY, OFFLINE, REMOTE_PYTHON). With no HOST the sandbox is the server.
# HOSTS=inventory.toml runs setup-remote-ops, db-backup-ops, schedule-ops, unschedule-ops and
# schedule-status on every host of the inventory instead (mmops fleet ..., PARALLEL=N at most at once; see README).
.PHONY: setup-remote-ops db-backup-ops db-restore-ops
export OFFLINE REMOTE_PYTHON HOSTS PARALLEL
REMOTE_NEEDS := $(STAMP) $(if $(HOST)$(HOSTS),,sandbox)

setup-remote-ops: $(REMOTE_NEEDS)
	$(BIN)/mmops $(if $(HOSTS),fleet setup,remote setup)

db-backup-ops: $(REMOTE_NEEDS)
	$(BIN)/mmops $(if $(HOSTS),fleet backup,remote backup)

# With HOSTS (an inventory) but no HOST these would fall back to the sandbox: they work on one
# host, so say so instead.
ONE_HOST = @test -z "$(HOSTS)" -o -n "$(HOST)" || { echo "make $@ works on one host: set HOST=... (HOSTS= is for setup-remote-ops, db-backup-ops and the schedule targets)" >&2; exit 2; }

db-restore-ops: $(REMOTE_NEEDS)
	$(ONE_HOST)
	@test -n "$(BACKUP)" || { echo "usage: make db-restore-ops BACKUP=backups/FILE.mmops|old.json|dump.sql (or BACKUP=latest)" >&2; exit 2; }
	$(BIN)/mmops remote restore

# SSH tunnel mode (mmops tunnel ...): nothing installed on the server; the engine runs here and
# reaches the database through a forward from 127.0.0.1:<ephemeral>. Same variables as above.
.PHONY: db-backup-ssh db-restore-ssh

db-backup-ssh: $(REMOTE_NEEDS)
	$(ONE_HOST)
	$(BIN)/mmops tunnel backup

db-restore-ssh: $(REMOTE_NEEDS)
	$(ONE_HOST)
	@test -n "$(BACKUP)" || { echo "usage: make db-restore-ssh BACKUP=backups/FILE.mmops|old.json|dump.sql (or BACKUP=latest)" >&2; exit 2; }
	$(BIN)/mmops tunnel restore

# Sandbox + setup + backup + a visible change + restore (YES=1) + a check that the data is back,
# from its own venv holding only the package (pip install -e ., none of the test tools).
.PHONY: demo-steps
demo:
	@$(MAKE) --no-print-directory demo-steps VENV=.venv-demo EXTRAS=

demo-steps: $(STAMP)
	@$(MAKE) --no-print-directory sandbox
	@$(MAKE) --no-print-directory setup-remote-ops HOST= HOSTS= ENV_FILE=
	@$(BIN)/mmops remote demo-step snapshot
	@$(MAKE) --no-print-directory db-backup-ops HOST= HOSTS= ENV_FILE=
	@$(BIN)/mmops remote demo-step change
	@$(MAKE) --no-print-directory db-restore-ops HOST= HOSTS= ENV_FILE= BACKUP=latest YES=1
	@$(BIN)/mmops remote demo-step check

# The Database Management page (mmops web) against the sandbox's database, read from the
# sandbox's env file (never a URL on the command line). BIND=127.0.0.1:8080, ROOT_PATH=/admin/db;
# the admin password's hash comes from MMOPS_WEB_PASSWORD_HASH (mmops web hash-password).
.PHONY: web
BIND ?= 127.0.0.1:8080
web: $(STAMP) sandbox
	@test -n "$$MMOPS_WEB_PASSWORD_HASH" || { echo "make web needs the admin password's hash: export MMOPS_WEB_PASSWORD_HASH=\"\$$($(BIN)/mmops web hash-password)\" (asks for the password)" >&2; exit 3; }
	$(BIN)/mmops web --bind $(BIND) $(if $(ROOT_PATH),--root-path $(ROOT_PATH)) --env-file "$$($(BIN)/mmops sandbox env --json | $(BIN)/python -c 'import json, sys; print(json.load(sys.stdin)["ENV_FILE"])')"

# The backup repository (REPO=dir|s3://BUCKET/PREFIX|gs://BUCKET/PREFIX, default BACKUP_DIR):
# list every backup; prune one database's backups with KEEP="daily=7 weekly=4 monthly=12"
# (DATABASE=name, DRY_RUN=1 to see what would go and why).
.PHONY: list-ops prune-ops
list-ops: $(STAMP)
	$(BIN)/mmops repo --repo "$(or $(REPO),$(BACKUP_DIR))" list $(if $(DATABASE),--database $(DATABASE))

prune-ops: $(STAMP)
	@test -n "$(KEEP)" -a -n "$(DATABASE)" || { echo 'usage: make prune-ops DATABASE=name KEEP="daily=7 weekly=4 monthly=12" [REPO=…] [DRY_RUN=1]' >&2; exit 2; }
	$(BIN)/mmops repo --repo "$(or $(REPO),$(BACKUP_DIR))" prune --database $(DATABASE) $(if $(DRY_RUN),--dry-run)

# Scheduled backups on the server, through the agent (mmops schedule ...): a hardened systemd
# timer (system units with sudo -n, else user units) or, without a running systemd, a crontab
# entry for the login user. REPO is the server's view: an absolute dir, s3:// or gs://.
.PHONY: schedule-ops unschedule-ops schedule-status schedule-run-ops
# NOTIFY (notification URLs, may hold tokens): set it in the environment, not on make's command
# line; it reaches the CLI through the environment and the server on the agent's stdin.
export CALENDAR RANDOMIZED_DELAY STALL SCHEDULER TEST_RESTORE NOTIFY

schedule-ops: $(REMOTE_NEEDS)
	@test -n "$(REPO)$(HOSTS)" || { echo "usage: make schedule-ops REPO=/srv/backups|s3://BUCKET/PREFIX [ENCRYPT_TO=age1...] [CALENDAR='*-*-* 02:00:00 UTC'] [KEEP='daily=7 weekly=4 monthly=12'] [STALL=10] [TEST_RESTORE='Sun *-*-* 04:00:00 UTC'] (NOTIFY='url …' in the environment)" >&2; exit 2; }
	$(BIN)/mmops $(if $(HOSTS),fleet schedule,schedule install)

unschedule-ops: $(REMOTE_NEEDS)
	$(BIN)/mmops $(if $(HOSTS),fleet unschedule,schedule remove)

# schedule-status exits non-zero (mmops: Nagios 1/2/3) when runs fail, are missed or would not start.
schedule-status: $(REMOTE_NEEDS)
	$(BIN)/mmops $(if $(HOSTS),fleet schedule-status,schedule status)

# Run the installed scheduled backup once now, as its scheduler would (proves it can run).
schedule-run-ops: $(REMOTE_NEEDS)
	$(ONE_HOST)
	$(BIN)/mmops schedule run-now
