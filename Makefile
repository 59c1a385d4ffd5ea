# markdown-manager-ops — the user interface is these targets; each one calls the `mmops` CLI,
# and make shows the complete command it runs (every setting as a flag; secrets such as NOTIFY
# and the AWS_* keys travel only in the environment, never on a command line).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BOOTSTRAP_DIR ?= .state/bootstrap

# Variables users set (see README: Variables). Make stops on any other upper-case name on its
# command line (or in the environment with our prefixes: MMOPS_, ENCRYPT_, REPO_, AGE_, KEEP_),
# naming the closest one — a typo such as HSOT= or ENCRYPT_T0= must never change what happens.
USER_VARS := HOST REMOTE_USER_HOST HOSTS PARALLEL FLEET_LOG_DIR SSH_CONFIG ENV_FILE PROD_ENV_FILE \
  OPS_DIR REMOTE_PYTHON OFFLINE ACCEPT_NEW_HOST_KEY BACKUP_DIR BACKUP FROM_DATABASE YES FORCE \
  WITH_DEPENDENTS NO_OWNER NO_PRIVILEGES MMOPS_PG_BINDIR \
  TABLES EXCLUDE_TABLES REPO MMOPS_REPO REPO_ENV_FILE ENCRYPT_TO AGE_IDENTITY LOCK_DAYS KEEP \
  KEEP_LOCAL YIELD_AFTER LOCK_TIMEOUT CALENDAR RANDOMIZED_DELAY STALL SCHEDULER TEST_RESTORE \
  NOTIFY DATABASE DRY_RUN BIND ROOT_PATH MMOPS_WEB_PASSWORD_HASH MMOPS_SANDBOX_DIR \
  MMOPS_SANDBOX_USER MMOPS_SCHEDULE_ENV_FILE MMOPS_SCREENSHOTS SCRATCH_DATABASE_URL \
  PYTEST_ARGS SIZE STORAGE_MB PYTHON VENV BOOTSTRAP_DIR EXTRAS
MAKE_OWN_VARS := MAKEFLAGS MFLAGS MAKELEVEL MAKEFILES MAKEOVERRIDES SHELL MAKE
VAR_TYPOS := $(shell $(PYTHON) scripts/check_make_vars.py --known '$(USER_VARS) $(MAKE_OWN_VARS)' \
  --given '$(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(v)))' \
  --env '$(foreach v,$(.VARIABLES),$(if $(filter environment%,$(origin $(v))),$(v)))')
ifneq ($(strip $(VAR_TYPOS)),)
$(error $(VAR_TYPOS))
endif

# What the venv installs: the package with its test tools; `make demo` uses the package alone.
EXTRAS ?= [test]

HOST ?= $(REMOTE_USER_HOST)
ENV_FILE ?= $(PROD_ENV_FILE)
BACKUP_DIR ?= ./backups
export HOST SSH_CONFIG ENV_FILE OPS_DIR BACKUP_DIR BACKUP YES FORCE TABLES EXCLUDE_TABLES ACCEPT_NEW_HOST_KEY
# Repository, encryption and retention (see README): credentials stay in the AWS_*/GOOGLE_* env.
export REPO REPO_ENV_FILE ENCRYPT_TO AGE_IDENTITY LOCK_DAYS KEEP KEEP_LOCAL

# Settings become flags, so the command make echoes is the complete one:
# $(call opt,--host,HOST) is "--host 'value'" when HOST is set (quoted for the shell);
# $(call switch,--yes,YES) is "--yes" unless YES is empty, 0, false or no.
quote = '$(subst ','\'',$(1))'
opt = $(if $(strip $($(2))),$(1) $(call quote,$(strip $($(2)))))
switch = $(if $(filter-out 0 false False FALSE no No NO,$(strip $($(2)))),$(1))
SSH_OPTS = $(strip $(call opt,--host,HOST) $(call opt,--ssh-config,SSH_CONFIG) \
  $(call opt,--env-file,ENV_FILE) $(call switch,--accept-new-host-key,ACCEPT_NEW_HOST_KEY))
AGENT_OPTS = $(strip $(SSH_OPTS) $(call opt,--ops-dir,OPS_DIR) $(call opt,--python,REMOTE_PYTHON))
TABLE_OPTS = $(strip $(call opt,--tables,TABLES) $(call opt,--exclude-tables,EXCLUDE_TABLES))
PUBLISH_OPTS = $(strip $(call opt,--repo,REPO) $(call opt,--encrypt-to,ENCRYPT_TO) \
  $(call opt,--lock-days,LOCK_DAYS) $(call opt,--keep,KEEP) $(call switch,--keep-local,KEEP_LOCAL) \
  $(call opt,--yield-after,YIELD_AFTER) $(call opt,--backup-lock-timeout,LOCK_TIMEOUT))
RESTORE_OPTS = $(strip $(call opt,--backup-dir,BACKUP_DIR) $(call opt,--tables,TABLES) \
  $(call switch,--yes,YES) $(call switch,--force,FORCE) \
  $(call switch,--with-dependents,WITH_DEPENDENTS) $(call opt,--repo,REPO) \
  $(call opt,--identity,AGE_IDENTITY) $(call opt,--from-database,FROM_DATABASE) \
  $(call switch,--no-owner,NO_OWNER) $(call switch,--no-privileges,NO_PRIVILEGES))
FLEET_OPTS = $(strip $(call opt,--hosts,HOSTS) $(call opt,--parallel,PARALLEL))

# With no HOST (nor HOSTS) the remote targets use the local sandbox: said first, every time.
SANDBOX_NOTE = $(if $(HOST)$(HOSTS),,@echo "make $@: no HOST given, so the server is the local sandbox (./.state/sandbox); set HOST=user@host for a real one." >&2)

.PHONY: venv test lint bench demo sandbox sandbox-stop lock clean known-vars

# scripts/bootstrap installs what a fresh Debian machine lacks (system packages with apt-get as
# root, else it names the command; the postgres OS user; npm packages): `.ci/run` runs it too.
# One stamp per purpose (test, demo), remade when the script or an npm manifest changes.
NPM_MANIFESTS := $(shell git ls-files -- 'package.json' '*/package.json' 'package-lock.json' '*/package-lock.json' 2>/dev/null)
$(BOOTSTRAP_DIR)/%: scripts/bootstrap $(NPM_MANIFESTS)
	scripts/bootstrap $*
	@mkdir -p $(@D) && touch $@

# The names USER_VARS lists, one per line (the tests compare them with mmops's env vars).
known-vars:
	@printf '%s\n' $(USER_VARS)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.$(EXTRAS)'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check ops tests scripts
	$(BIN)/mypy

test: $(BOOTSTRAP_DIR)/test $(STAMP) lint
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
# scripts/bootstrap demo installs a missing OpenSSH server / PostgreSQL 15 as root, else names
# the command.
sandbox: $(BOOTSTRAP_DIR)/demo $(STAMP)
	$(BIN)/mmops sandbox start

sandbox-stop: $(STAMP)
	$(BIN)/mmops sandbox stop

# The remote-ops agent over SSH (mmops remote ...). Variables become the CLI's flags (HOST,
# SSH_CONFIG, ENV_FILE, OPS_DIR, BACKUP_DIR, BACKUP, YES, TABLES, ACCEPT_NEW_HOST_KEY, OFFLINE,
# REMOTE_PYTHON, ...). With no HOST the sandbox is the server, and the target says so first.
# HOSTS=inventory.toml runs setup-remote-ops, db-backup-ops, schedule-ops, unschedule-ops and
# schedule-status on every host of the inventory instead (mmops fleet ..., PARALLEL=N at most at once; see README).
.PHONY: setup-remote-ops db-backup-ops db-restore-ops
export OFFLINE REMOTE_PYTHON HOSTS PARALLEL
REMOTE_NEEDS := $(STAMP) $(if $(HOST)$(HOSTS),,sandbox)

REMOTE_BACKUP_OPTS = $(strip $(call opt,--backup-dir,BACKUP_DIR) $(TABLE_OPTS) $(PUBLISH_OPTS))

setup-remote-ops: $(REMOTE_NEEDS)
	$(SANDBOX_NOTE)
	$(BIN)/mmops $(strip $(if $(HOSTS),fleet setup $(FLEET_OPTS),remote setup $(AGENT_OPTS) $(call switch,--offline,OFFLINE)))

db-backup-ops: $(REMOTE_NEEDS)
	$(SANDBOX_NOTE)
	$(BIN)/mmops $(strip $(if $(HOSTS),fleet backup $(FLEET_OPTS),remote backup $(AGENT_OPTS) $(REMOTE_BACKUP_OPTS) $(call opt,--repo-env-file,REPO_ENV_FILE)))

# With HOSTS (an inventory) but no HOST these would fall back to the sandbox: they work on one
# host, so say so instead.
ONE_HOST = @test -z "$(HOSTS)" -o -n "$(HOST)" || { echo "make $@ works on one host: set HOST=... (HOSTS= is for setup-remote-ops, db-backup-ops and the schedule targets)" >&2; exit 2; }

db-restore-ops: $(REMOTE_NEEDS)
	$(ONE_HOST)
	@test -n "$(BACKUP)$(FROM_DATABASE)" || { echo "usage: make db-restore-ops BACKUP=backups/FILE.mmops|old.json|dump.sql (or BACKUP=latest [FROM_DATABASE=name])" >&2; exit 2; }
	$(SANDBOX_NOTE)
	$(BIN)/mmops $(strip remote restore $(AGENT_OPTS) $(RESTORE_OPTS) $(if $(BACKUP),$(call quote,$(BACKUP))))

# SSH tunnel mode (mmops tunnel ...): nothing installed on the server; the engine runs here and
# reaches the database through a forward from 127.0.0.1:<ephemeral>. Same variables as above.
.PHONY: db-backup-ssh db-restore-ssh

db-backup-ssh: $(REMOTE_NEEDS)
	$(ONE_HOST)
	$(SANDBOX_NOTE)
	$(BIN)/mmops $(strip tunnel backup $(SSH_OPTS) $(REMOTE_BACKUP_OPTS))

db-restore-ssh: $(REMOTE_NEEDS)
	$(ONE_HOST)
	@test -n "$(BACKUP)$(FROM_DATABASE)" || { echo "usage: make db-restore-ssh BACKUP=backups/FILE.mmops|old.json|dump.sql (or BACKUP=latest [FROM_DATABASE=name])" >&2; exit 2; }
	$(SANDBOX_NOTE)
	$(BIN)/mmops $(strip tunnel restore $(SSH_OPTS) $(RESTORE_OPTS) $(if $(BACKUP),$(call quote,$(BACKUP))))

# Sandbox + setup + backup + a visible change + restore (YES=1) + a check that the data is back,
# from its own venv holding only the package (pip install -e ., none of the test tools).
.PHONY: demo-steps
demo:
	@$(MAKE) --no-print-directory demo-steps VENV=.venv-demo EXTRAS=

demo-steps: $(BOOTSTRAP_DIR)/demo $(STAMP)
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
	$(BIN)/mmops repo list --repo $(call quote,$(or $(REPO),$(BACKUP_DIR))) $(call opt,--database,DATABASE)

prune-ops: $(STAMP)
	@test -n "$(KEEP)" -a -n "$(DATABASE)" || { echo 'usage: make prune-ops DATABASE=name KEEP="daily=7 weekly=4 monthly=12" [REPO=…] [DRY_RUN=1]' >&2; exit 2; }
	$(BIN)/mmops repo prune --repo $(call quote,$(or $(REPO),$(BACKUP_DIR))) $(call opt,--database,DATABASE) $(call opt,--keep,KEEP) $(call switch,--dry-run,DRY_RUN)

# Scheduled backups on the server, through the agent (mmops schedule ...): a hardened systemd
# timer (system units with sudo -n, else user units) or, without a running systemd, a crontab
# entry for the login user. REPO is the server's view: an absolute dir, s3:// or gs://.
.PHONY: schedule-ops unschedule-ops schedule-status schedule-run-ops
# NOTIFY (notification URLs, may hold tokens): set it in the environment, not on make's command
# line; it reaches the CLI through the environment and the server on the agent's stdin.
export CALENDAR RANDOMIZED_DELAY STALL SCHEDULER TEST_RESTORE NOTIFY
SCHEDULE_OPTS = $(strip $(call opt,--repo,REPO) $(call opt,--encrypt-to,ENCRYPT_TO) \
  $(call opt,--keep,KEEP) $(call opt,--lock-days,LOCK_DAYS) $(call opt,--calendar,CALENDAR) \
  $(call opt,--randomized-delay,RANDOMIZED_DELAY) $(call opt,--stall,STALL) \
  $(call opt,--repo-env-file,REPO_ENV_FILE) $(call opt,--scheduler,SCHEDULER) \
  $(call opt,--test-restore,TEST_RESTORE))

schedule-ops: $(REMOTE_NEEDS)
	@test -n "$(REPO)$(HOSTS)" || { echo "usage: make schedule-ops REPO=/srv/backups|s3://BUCKET/PREFIX [ENCRYPT_TO=age1...] [CALENDAR='*-*-* 02:00:00 UTC'] [KEEP='daily=7 weekly=4 monthly=12'] [STALL=10] [TEST_RESTORE='Sun *-*-* 04:00:00 UTC'] (NOTIFY='url …' in the environment)" >&2; exit 2; }
	$(SANDBOX_NOTE)
	$(BIN)/mmops $(strip $(if $(HOSTS),fleet schedule $(FLEET_OPTS),schedule install $(AGENT_OPTS) $(SCHEDULE_OPTS)))

unschedule-ops: $(REMOTE_NEEDS)
	$(SANDBOX_NOTE)
	$(BIN)/mmops $(strip $(if $(HOSTS),fleet unschedule $(FLEET_OPTS),schedule remove $(AGENT_OPTS)))

# schedule-status exits non-zero (mmops: Nagios 1/2/3) when runs fail, are missed or would not start.
schedule-status: $(REMOTE_NEEDS)
	$(SANDBOX_NOTE)
	$(BIN)/mmops $(strip $(if $(HOSTS),fleet schedule-status $(FLEET_OPTS),schedule status $(AGENT_OPTS)))

# Run the installed scheduled backup once now, as its scheduler would (proves it can run).
schedule-run-ops: $(REMOTE_NEEDS)
	$(ONE_HOST)
	$(SANDBOX_NOTE)
	$(BIN)/mmops schedule run-now $(AGENT_OPTS)
