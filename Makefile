# Set-up and everyday commands. Everything runs inside .venv, created on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DGLBACKEND := pytorch

.PHONY: install demo test lint bench clean

$(BIN)/zoo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	# setuptools cautions every editable install about same-named folders in the working
	# directory; zoo's own (models/, tuning/) are mapped to zoo.models and zoo.tuning on purpose
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/zoo

install: $(BIN)/zoo

demo: install
	$(BIN)/zoo train --model cgcnn --epochs 100
	$(BIN)/zoo screen --model zoo-elastic-mp2024 -o runs/demo-screen

test: install
	$(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=15

lint: install
	$(BIN)/ruff check zoo models tuning tests bench
	$(BIN)/ruff format --check zoo models tuning tests bench

bench: install
	$(BIN)/python bench/bench_cgcnn.py

clean:
	rm -rf $(VENV) cache runs
