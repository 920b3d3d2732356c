"""lss_fuzzer: a libFuzzer target plus a test that replays its seed corpus."""

load("//:copts.bzl", "LSS_COPTS", "LSS_TEST_COPTS")

def lss_fuzzer(name, srcs, deps, testonly = False):
    """Defines `name` and `name + "_corpus_test"`.

    With --config=fuzz (clang, ASan), `name` links libFuzzer. In any other
    build it links replay_main.cc instead and only replays files, so
    `bazel build //...` under gcc builds it harmlessly. (Not tagged manual:
    manual targets are skipped by `//lss/fuzz:all` too.)

    `name + "_corpus_test"` runs every file of corpus/<name>/ once, in
    whatever build is running, so the seeds stay valid inputs.
    """
    native.cc_binary(
        name = name,
        testonly = testonly,
        srcs = srcs,
        copts = LSS_COPTS,
        linkopts = select({
            ":fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = ["fuzz"],
        deps = deps + select({
            ":fuzzing": [],
            "//conditions:default": [":replay_main"],
        }),
    )
    native.cc_test(
        name = name + "_corpus_test",
        size = "small",
        srcs = srcs,
        args = ["lss/fuzz/corpus/" + name],
        copts = LSS_TEST_COPTS,
        data = native.glob(["corpus/" + name + "/*"]),
        deps = deps + [":replay_main"],
    )
