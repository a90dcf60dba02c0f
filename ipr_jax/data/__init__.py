"""Benchmark data: Sudoku boards and givens (symbolic cells)."""
