"""Compiler flags for the project's own code, in one place."""

LSS_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
]

LSS_TEST_COPTS = LSS_COPTS
