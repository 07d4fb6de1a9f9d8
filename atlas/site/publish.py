"""Publishing a built site to a gh-pages branch: one commit, no history, replacing the last one.

The commit is made in a throwaway repository whose work tree is the site folder itself, so
nothing is copied and the project's own repository is never touched; only the push goes to
the remote. Publishing to the project's origin requires a clean project, so that the
published site can be traced to a commit.

Nothing is pushed unless the site is a finished atlas build that passes its checks (links,
size budget), and a branch is replaced only when its tip is an earlier atlas publish commit
(it carries the `Atlas-Publish:` trailer) or `force` is given: `--branch main` must never wipe
a project's history. The push itself leases the tip it checked, so a branch that moves in
between is not overwritten either.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from atlas import __version__
from atlas.errors import AtlasError
from atlas.site.build import MARKER, read_marker
from atlas.site.check import DEFAULT_BUDGET, Budget, inspect_site

TRAILER = "Atlas-Publish"
# What `atlas publish` wrote before it added the trailer: a parentless commit with this subject.
LEGACY_SUBJECT = "Publish atlas site"


@dataclass(frozen=True)
class Published:
    remote: str
    branch: str
    commit: str
    files: int
    source: str  # the project commit the site was built from, "" when unknown


def _git(*args: str, cwd: Path | None = None, env_dir: Path | None = None) -> str:
    cmd = ["git", "-c", "core.autocrlf=false", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]
    if env_dir is not None:
        cmd += [f"--git-dir={env_dir}"]
    try:
        done = subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise AtlasError("git is not installed: install git to publish") from exc
    if done.returncode != 0:
        # All of git's lines (a rejected push explains itself over several), on one line.
        detail = " | ".join(line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip())
        raise AtlasError(f"git {args[0]} failed: {detail or 'exit ' + str(done.returncode)}")
    return done.stdout.strip()


def _identity(project: Path) -> list[str]:
    """The project's configured author, or a neutral one: publishing must not fail on a bare CI machine."""
    values = {"user.name": "atlas publish", "user.email": "atlas@localhost"}
    for key in values:
        try:
            values[key] = _git("config", key, cwd=project) or values[key]
        except AtlasError:
            pass
    return [arg for key, value in values.items() for arg in ("-c", f"{key}={value}")]


def _origin(project: Path) -> str:
    """The project's origin; a relative path is the project's (git reads it from the project folder),
    so it is made absolute here, where git runs from elsewhere."""
    try:
        url = _git("remote", "get-url", "origin", cwd=project)
    except AtlasError as exc:
        raise AtlasError(f"{project} has no git remote 'origin': pass --remote URL_OR_PATH") from exc
    local = Path(project) / url
    if "://" not in url and not Path(url).is_absolute() and local.exists():
        return str(local.resolve())
    return url


def check_branch(branch: str) -> str:
    """`branch` when it is a plain branch name (what `git check-ref-format --branch` takes, less the
    `@{-N}` shorthands, `HEAD` and full `refs/...` names); raises AtlasError otherwise."""
    plain = bool(branch) and not branch.startswith(("-", "refs/")) and branch != "HEAD" and "@{" not in branch
    if plain:
        try:
            _git("check-ref-format", f"refs/heads/{branch}")
        except AtlasError as exc:
            if "not installed" in str(exc):
                raise
            plain = False
    if not plain:
        raise AtlasError(f"--branch {branch!r} is not a branch name: give one such as gh-pages "
                         "(not HEAD, not refs/heads/...)")
    return branch


def _check_remote(remote: str) -> str:
    if remote.startswith("-"):
        raise AtlasError(f"--remote {remote!r} starts with '-': give a URL or a path (./{remote} for a folder)")
    return remote


def _head(project: Path) -> str | None:
    """The project's HEAD commit; None when the repository has no commit yet."""
    try:
        _git("rev-parse", "--git-dir", cwd=project)
    except AtlasError as exc:
        raise AtlasError(f"{project} is not in a git repository: pass --remote URL_OR_PATH, "
                         "or run from the project") from exc
    try:
        return _git("rev-parse", "--verify", "--quiet", "HEAD^{commit}", cwd=project)
    except AtlasError:
        return None


def _check_clean(project: Path) -> str:
    """The project's HEAD commit; raises when tracked files have uncommitted changes or there is none."""
    head = _head(project)
    if head is None:
        raise AtlasError(f"the repository of {project} has no commits yet: commit the project first, "
                         "so that the published site names the commit it was built from")
    changed = _git("status", "--porcelain", "--untracked-files=no", cwd=project).splitlines()
    if changed:
        raise AtlasError(
            f"the project has uncommitted changes in {len(changed)} tracked file(s), "
            f"e.g. {changed[0].split(maxsplit=1)[-1]}; "
            "commit or stash them so that the published site matches a commit"
        )
    return head


def publish(site: Path, remote: str | None = None, *, branch: str = "gh-pages", project: Path = Path("."),
            message: str | None = None, force: bool = False, budget: Budget = DEFAULT_BUDGET) -> Published:
    """Push the site in `site` to `remote` (default: the origin of the git repository holding
    `project`) as the only commit on `branch`, after checking the site and the branch's tip."""
    site = Path(site)
    check_branch(branch)
    _check_site(site, budget)
    if remote is None or remote == "origin":
        remote_url = _check_remote(_origin(project))
        source = _check_clean(project)
    else:
        local = Path(_check_remote(remote))
        remote_url = str(local.resolve()) if local.exists() else remote
        try:
            source = _head(project) or ""
        except AtlasError:
            source = ""
    with tempfile.TemporaryDirectory(prefix="atlas-publish-") as tmp:
        git_dir = Path(tmp) / "repo.git"
        _git("init", "--quiet", "--bare", str(git_dir))
        tip = _remote_tip(remote_url, branch, git_dir)
        if tip and not force:
            _check_atlas_commit(remote_url, branch, tip, git_dir)
        work = ["--work-tree", str(site.resolve())]
        _git(*work, "add", "--all", "--force", ".", env_dir=git_dir)
        if not (site / ".nojekyll").exists():  # GitHub Pages must not run Jekyll on the site
            empty = _git("hash-object", "-w", "--stdin", env_dir=git_dir)
            _git("update-index", "--add", "--cacheinfo", f"100644,{empty},.nojekyll", env_dir=git_dir)
        files = len(_git("ls-files", env_dir=git_dir).splitlines())
        text = message or f"{LEGACY_SUBJECT}{' built from ' + source[:12] if source else ''}"
        text = f"{text.rstrip()}\n\n{TRAILER}: atlas {__version__}\n"
        identity = _identity(project)
        tree = _git("write-tree", env_dir=git_dir)
        commit = _git(*identity, "commit-tree", tree, "-m", text, env_dir=git_dir)
        lease = f"--force-with-lease=refs/heads/{branch}:{tip}"  # empty tip: the branch must still not exist
        _git("push", "--quiet", lease, "--", remote_url, f"{commit}:refs/heads/{branch}", env_dir=git_dir)
    return Published(remote_url, branch, commit, files, source)


def _check_site(site: Path, budget: Budget) -> None:
    """Raise unless `site` is a finished atlas build whose links resolve and which fits `budget`."""
    marker = read_marker(site)
    if marker is not None and not marker.complete:
        raise AtlasError(f"the build of {site} did not finish (interrupted?); nothing pushed: run `atlas build` again")
    if marker is None or not (site / "index.html").is_file():
        raise AtlasError(
            f"{site} holds no built site (index.html, {MARKER}): run `atlas build` first or pass --out DIR")
    problems = inspect_site(site, budget).problems
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise AtlasError(f"the site {site} fails its check, nothing pushed: {'; '.join(problems[:3])}{more}; "
                         "run `atlas build` again to repair it")


def _remote_tip(remote: str, branch: str, git_dir: Path) -> str:
    """The commit `branch` points to on `remote`, "" when there is no such branch."""
    listed = _git("ls-remote", "--heads", "--", remote, f"refs/heads/{branch}", env_dir=git_dir)
    return next((line.split()[0] for line in listed.splitlines() if line.endswith(f"refs/heads/{branch}")), "")


def _check_atlas_commit(remote: str, branch: str, tip: str, git_dir: Path) -> None:
    """Raise unless `tip` (fetched from `remote`) was made by `atlas publish`."""
    _git("fetch", "--quiet", "--depth=1", "--", remote, f"refs/heads/{branch}", env_dir=git_dir)
    body = _git("cat-file", "commit", tip, env_dir=git_dir)
    header, _, text = body.partition("\n\n")
    trailers = [line for line in text.splitlines() if line.startswith(f"{TRAILER}: ")]
    legacy = text.startswith(LEGACY_SUBJECT) and not any(line.startswith("parent ") for line in header.splitlines())
    if not trailers and not legacy:
        subject = text.splitlines()[0] if text.strip() else ""
        raise AtlasError(
            f"branch {branch!r} of {remote} was not published by atlas (its tip {tip[:12]} is {subject!r}) and "
            "publishing would replace its whole history: pick another --branch (default gh-pages), "
            "or pass --force if you really mean to overwrite it"
        )
