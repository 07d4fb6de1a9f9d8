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

A host answers a missing path with the root's 404.html as it is, so at /REPO/a/b/missing.html its
relative links would resolve against /REPO/a/b/. The published 404.html has them rooted at the site's
address path instead, which the remote tells (a GitHub project site lives at /REPO/, OWNER.github.io
and a custom domain at /) or `base_path` gives. Only the commit holds that page: the site folder
stays as built, relocatable and checked.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from atlas import __version__
from atlas.errors import AtlasError
from atlas.site.build import MARKER, read_marker
from atlas.site.check import DEFAULT_BUDGET, Budget, inspect_site
from atlas.site.serve import rooted

TRAILER = "Atlas-Publish"
# What `atlas publish` wrote before it added the trailer: a parentless commit with this subject.
LEGACY_SUBJECT = "Publish atlas site"
# An address path: "/" or "/a/b/", of segments of URL characters that need no escaping, none "." or "..".
BASE_PATH = re.compile(r"/(?:(?!\.\.?/)[A-Za-z0-9._~-]+/)*")


@dataclass(frozen=True)
class Published:
    remote: str
    branch: str
    commit: str
    files: int
    source: str  # the project commit the site was built from, "" when unknown
    base_path: str | None  # where the published 404.html roots its links; None: pushed as built


def _git(*args: str, cwd: Path | None = None, env_dir: Path | None = None, stdin: bytes | None = None) -> str:
    cmd = ["git", "-c", "core.autocrlf=false", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]
    if env_dir is not None:
        cmd += [f"--git-dir={env_dir}"]
    try:
        done = subprocess.run([*cmd, *args], cwd=cwd, input=stdin, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise AtlasError("git is not installed: install git to publish") from exc
    out, err = (stream.decode("utf-8", "replace") for stream in (done.stdout, done.stderr))
    if done.returncode != 0:
        # All of git's lines (a rejected push explains itself over several), on one line.
        detail = " | ".join(line.strip() for line in (err or out).splitlines() if line.strip())
        raise AtlasError(f"git {args[0]} failed: {detail or 'exit ' + str(done.returncode)}")
    return out.strip()


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


def check_base_path(path: str) -> str:
    """`path` when it is a site's address path such as /REPO/; raises AtlasError otherwise."""
    if not BASE_PATH.fullmatch(path):
        raise AtlasError(f"--base-path {path!r} is not an address path: give the path the site is served "
                         "under, starting and ending with '/' and made of letters, digits and -._~ "
                         "(/REPO/ for https://OWNER.github.io/REPO/, / for a custom domain)")
    return path


def pages_base_path(remote: str, site: Path) -> str | None:
    """Where GitHub Pages serves `site` pushed to `remote`: / for a custom domain (a CNAME file) or a
    user or organisation site (OWNER/OWNER.github.io), /REPO/ for a project site; None off GitHub."""
    if (site / "CNAME").is_file():
        return "/"
    if "://" in remote:
        parts = urlsplit(remote)
        host, path = parts.hostname or "", parts.path
    else:  # scp-like: [user@]host:path, as git reads a colon before any slash
        host, colon, path = remote.partition(":")
        host = host.rpartition("@")[2] if colon and "/" not in host else ""
    names = path.strip("/").removesuffix(".git").split("/")
    if host.lower() != "github.com" or len(names) != 2 or not BASE_PATH.fullmatch(f"/{names[1]}/"):
        return None
    owner, repo = names
    return "/" if repo.lower() == f"{owner.lower()}.github.io" else f"/{repo}/"


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
            message: str | None = None, force: bool = False, budget: Budget = DEFAULT_BUDGET,
            base_path: str | None = None) -> Published:
    """Push the site in `site` to `remote` (default: the origin of the git repository holding
    `project`) as the only commit on `branch`, after checking the site and the branch's tip.
    `base_path`: the site's address path, which its 404 page roots its links at (default: from the
    remote; off GitHub, the page is pushed as built)."""
    site = Path(site)
    check_branch(branch)
    if base_path is not None:
        check_base_path(base_path)
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
    if base_path is None:
        base_path = pages_base_path(remote_url, site)
    with tempfile.TemporaryDirectory(prefix="atlas-publish-") as tmp:
        git_dir = Path(tmp) / "repo.git"
        _git("init", "--quiet", "--bare", str(git_dir))
        tip = _remote_tip(remote_url, branch, git_dir)
        if tip and not force:
            _check_atlas_commit(remote_url, branch, tip, git_dir)
        work = ["--work-tree", str(site.resolve())]
        _git(*work, "add", "--all", "--force", ".", env_dir=git_dir)
        if not (site / ".nojekyll").exists():  # GitHub Pages must not run Jekyll on the site
            _stage(git_dir, ".nojekyll", b"")
        missing = site / "404.html"
        if base_path is not None and missing.is_file():
            _stage(git_dir, missing.name, rooted(missing.read_bytes(), base_path))
        files = len(_git("ls-files", env_dir=git_dir).splitlines())
        text = message or f"{LEGACY_SUBJECT}{' built from ' + source[:12] if source else ''}"
        text = f"{text.rstrip()}\n\n{TRAILER}: atlas {__version__}\n"
        identity = _identity(project)
        tree = _git("write-tree", env_dir=git_dir)
        commit = _git(*identity, "commit-tree", tree, "-m", text, env_dir=git_dir)
        lease = f"--force-with-lease=refs/heads/{branch}:{tip}"  # empty tip: the branch must still not exist
        _git("push", "--quiet", lease, "--", remote_url, f"{commit}:refs/heads/{branch}", env_dir=git_dir)
    return Published(remote_url, branch, commit, files, source, base_path)


def _stage(git_dir: Path, name: str, data: bytes) -> None:
    """Put `data` in the index as the file `name`, leaving the work tree (the site) as it is."""
    blob = _git("hash-object", "-w", "--stdin", env_dir=git_dir, stdin=data)
    _git("update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", env_dir=git_dir)


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
