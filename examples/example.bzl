"""lss_example: one example program and the test that runs it."""

load("//:copts.bzl", "LSS_COPTS")

def lss_example(name, deps):
    """`name`.cc as a cc_binary, run by `name`_test on a fresh log path.

    Args:
      name: the program, and its source without ".cc".
      deps: what it uses of lss.
    """
    native.cc_binary(
        name = name,
        srcs = [name + ".cc"],
        copts = LSS_COPTS,
        deps = deps + [":example_main"],
    )
    native.sh_test(
        name = name + "_test",
        size = "small",
        srcs = ["run_example.sh"],
        args = ["$(rootpath :%s)" % name],
        data = [":" + name],
    )
