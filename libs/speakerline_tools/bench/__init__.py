"""Benchmarks, each run as `python -m speakerline_tools.bench.<name>` (the Makefile's bench targets): `suite` (every
benchmark into one report: `make bench`), `load` (`make bench-load`), `pipeline_bench`, `projector_bench`, `engines`,
`long_audio` (`make bench-long`) and `media` (the micro-benchmarks of `make bench-micro`); `stats`,
`speech_recordings` and `projector_workload` are their parts. They work on a checkout (`speakerline_tools.repo`): its
test data, its local stack."""
