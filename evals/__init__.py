"""Evaluation runs: sets of questions with expected answers, asked as runs, with verdicts and figures."""
