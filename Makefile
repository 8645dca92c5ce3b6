# `make book` builds the book (the main job); `make test` runs every test. Both create the
# environment in .venv first if it is missing or older than requirements.txt / pyproject.toml.
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed
# MathJax is served from the built site (offline, or where its CDN is blocked, equations still
# render): npm's mathjax package, copied where _config.yml's html_static_path looks.
MATHJAX := build/mathjax/mathjax/tex-mml-chtml.js

.PHONY: env book test unit clean

env: $(STAMP) $(MATHJAX)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

$(MATHJAX):
	npm install --silent --no-save --no-audit --no-fund --prefix build/npm mathjax@3
	mkdir -p build/mathjax/mathjax
	cp -r build/npm/node_modules/mathjax/es5/. build/mathjax/mathjax/

# Executes every chapter; -W turns any warning into a failure.
book: env
	$(BIN)/jupyter-book build . --all -W --keep-going

# Unit tests, the notebook pair check, nbval on every chapter, and the browser check of the
# built book (so the book is built first).
test: book
	$(BIN)/python -m pytest --nbval-lax -v --durations=0

# The unit tests alone (fast, no book build, no notebooks).
unit: env
	$(BIN)/python -m pytest tests -v

clean:
	rm -rf _build
