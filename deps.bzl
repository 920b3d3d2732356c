"""The repositories a workspace that builds lss declares, all offline.

Bazel 4 wants rules_cc, rules_java and remote_coverage_tools on the first
build and would download them; these declarations satisfy each locally, so
nothing is fetched. This workspace calls the macro, and so does any
workspace that depends on lss:

    local_repository(name = "lss", path = "...")
    load("@lss//:deps.bzl", "lss_dependencies")
    lss_dependencies()

A repository the workspace already declared is left alone.
"""

def _in_tree_repository_impl(rctx):
    # third_party/<name> of this repository, linked file by file: a macro
    # cannot name a path inside another repository, a repository rule can.
    src = rctx.path(Label("//third_party:BUILD.bazel")).dirname.get_child(
        rctx.attr.dir,
    )
    for entry in src.readdir():
        rctx.symlink(entry, entry.basename)

_in_tree_repository = repository_rule(
    implementation = _in_tree_repository_impl,
    attrs = {"dir": attr.string(mandatory = True)},
    local = True,
)

def lss_dependencies():
    if not native.existing_rule("rules_cc"):
        # Re-exports the native C++ rules; Debian's rules_cc is too new for
        # Bazel 4.
        _in_tree_repository(name = "rules_cc", dir = "rules_cc")
    if not native.existing_rule("rules_java"):
        # Installed by Debian's bazel-rules-java (pulled in by ./bazelw).
        native.local_repository(
            name = "rules_java",
            path = "/usr/share/bazel/rules/java",
        )
    if not native.existing_rule("remote_coverage_tools"):
        # Every `bazel test` wants it; coverage itself is not available
        # offline.
        _in_tree_repository(
            name = "remote_coverage_tools",
            dir = "remote_coverage_tools",
        )
