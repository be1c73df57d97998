# The two set-up commands of the README:
#   make demo   install, migrate, load demo data and serve on http://127.0.0.1:8000/
#   make test   install, lint, check migrations and run the test suite
# DATABASE_URL and REDIS_URL, when set, are used as they are (see README).

VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test install lint serve worker clean bench

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || "$$(scripts/find-python)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

install: $(VENV)/.installed

demo: install
	$(PY) manage.py migrate --no-input
	$(PY) manage.py demo
	@echo "Serving on http://$(HOST):$(PORT)/ (Ctrl-C to stop)"
	$(PY) manage.py runserver $(HOST):$(PORT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run

test: lint
	$(VENV)/bin/pytest --create-db $(PYTEST_ARGS)

serve: install
	$(PY) manage.py runserver $(HOST):$(PORT)

worker: install
	$(PY) manage.py rqworker default

# The benchmarks against DATABASE_URL (PostgreSQL): builds the data set if it is missing,
# then prints bench/out/results.md. BENCH_ARGS=--quick tries it on a small data set.
bench: install
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) staticfiles db.sqlite3 db.sqlite3-*
