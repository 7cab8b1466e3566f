"""Generators of the evaluation data under tests/data, each run as `python -m speakerline_tools.datasets.<name>`:
`eval_set` (the synthetic conversations and the sample), `voices_set` (conversations of real LibriSpeech voices)."""
