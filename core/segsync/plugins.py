"""Plugin discovery and the typed facade over pluggy's hook relay.

Plugins are found through the ``segsync`` entry-point group. Each entry point is loaded on its
own: one that fails to import is reported with its name and distribution, and the others still
load. ``SEGSYNC_DISABLE_PLUGINS`` (``1``/``all``, or a comma-separated list of plugin names)
and ``SEGSYNC_PLUGINS`` (an allow-list) switch plugins off. Built-in behaviour lives in
``segsync.default_plugins`` and is registered through the same hooks.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from segsync import hookspecs
from segsync.distributions import BUILT_IN, IN_PROCESS, InstallSource, install_source, normalize_name
from segsync.hookspecs import hookimpl  # re-exported: plugins import it from here

if TYPE_CHECKING:
    import click

    from segsync.connector import Connector, ContactChange, WriteResult
    from segsync.consent.policies import ConsentPolicy
    from segsync.engines import Engine
    from segsync.scores import ScoreRun
    from segsync.sync.summary import RunSummary
    from segsync.triggers.changes import SegmentChanges
    from segsync.segments import FunctionRegistry
    from segsync.segments.packs import SegmentPack

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "segsync"

DEFAULT_PLUGINS = (
    "segsync.default_plugins.event_types",
    "segsync.default_plugins.push",
    "segsync.default_plugins.segment_functions",
    "segsync.default_plugins.segment_packs",
    "segsync.default_plugins.consent_policies",
    "segsync.default_plugins.engines",
    # The CLI's commands, added through segsync_register_commands like a third party's.
    "segsync.cli.project",
    "segsync.cli.sync",
    "segsync.cli.runs",
    "segsync.cli.contacts",
    "segsync.cli.segments",
    "segsync.cli.consent",
    "segsync.cli.plugins",
    "segsync.cli.check",
    "segsync.cli.rejections",
    "segsync.cli.triggers",
    "segsync.cli.new",
    "segsync.cli.install",
)


class PluginError(Exception):
    """A plugin broke the contract (bad registration, duplicate name, failing hook)."""


class DuplicateRegistration(PluginError):
    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        super().__init__(
            f"{kind} {name!r} is registered by both plugin {first!r} and plugin {second!r}; "
            f"uninstall one or disable it with SEGSYNC_DISABLE_PLUGINS={second}"
        )


@dataclass
class PluginLoadFailure:
    name: str
    distribution: str | None
    error: str
    version: str | None = None
    installed_from: InstallSource | None = None

    def message(self) -> str:
        dist = f" (distribution {self.distribution})" if self.distribution else ""
        return f'Error loading plugin "{self.name}"{dist}: {self.error}'


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: list[str]
    connector_types: list[str] = field(default_factory=list)
    # Connector type → its declared capabilities (values of segsync.Capability), sorted.
    capabilities: dict[str, list[str]] = field(default_factory=dict)
    installed_from: InstallSource | None = None


@dataclass
class _Registered:
    value: Any
    plugin: str


def _env_names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None or not raw.strip():
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginHost:
    """Loads plugins once and offers each hook as a typed method.

    The rest of segsync never touches ``pm.hook`` directly.
    """

    def __init__(self, *, load_entry_points: bool = True, extra_plugins: Sequence[Any] = ()) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginLoadFailure] = []
        # Plugin name → (distribution, version, where it was installed from). The version (None:
        # not read yet) and the install source come from the distribution's metadata, parsed
        # only when asked, by plugins(): every command loads the plugins, few list them.
        self._distributions: dict[str, tuple[str, str | None, InstallSource | metadata.Distribution | None]] = {}
        for module_name in DEFAULT_PLUGINS:
            self.pm.register(importlib.import_module(module_name), name=module_name)
            self._distributions[module_name] = ("segsync", None, BUILT_IN)
        if load_entry_points:
            self._load_entry_points()
        for plugin in extra_plugins:
            self.register(plugin)
        self.pm.check_pending()
        self._connectors: dict[str, _Registered] | None = None
        self._event_types: dict[str, _Registered] | None = None
        self._segment_functions: dict[str, _Registered] | None = None
        self._segment_packs: dict[str, _Registered] | None = None
        self._consent_policies: dict[str, _Registered] | None = None
        self._engines: dict[str, _Registered] | None = None

    # -- loading ---------------------------------------------------------------------------

    def _load_entry_points(self) -> None:
        disabled = _env_names("SEGSYNC_DISABLE_PLUGINS") or set()
        if disabled & {"1", "all", "*", "true"}:
            return
        allowed = _env_names("SEGSYNC_PLUGINS")
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled or (allowed is not None and ep.name not in allowed):
                continue
            if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                continue
            dist_name = ep.dist.name if ep.dist else None
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:  # one broken plugin must not stop the others
                version = ep.dist.version if ep.dist else None
                failure = PluginLoadFailure(ep.name, dist_name, f"{type(exc).__name__}: {exc}",
                                            version, install_source(ep.dist))
                self.failures.append(failure)
                log.warning(failure.message())
                continue
            self._distributions[ep.name] = (dist_name or ep.name, None, ep.dist)

    def register(self, plugin: Any, name: str | None = None) -> str:
        """Register an in-process plugin (tests, embedding applications).

        Without ``name``, an instance is named after its class (``Audit``, ``Audit#2``, …) so
        messages that blame it say something readable rather than an object id.
        """
        if name is None and not hasattr(plugin, "__name__"):
            base = type(plugin).__qualname__.rpartition("<locals>.")[2]
            name = next(n for n in (base if i == 1 else f"{base}#{i}" for i in itertools.count(1))
                        if self.pm.get_plugin(n) is None and not self.pm.is_blocked(n))
        registered = self.pm.register(plugin, name=name)
        assert registered is not None
        self._distributions.setdefault(registered, ("(in-process)", "", IN_PROCESS))
        self.pm.check_pending()
        self._connectors = self._event_types = self._segment_functions = None
        self._segment_packs = None
        self._consent_policies = None
        self._engines = None
        return registered

    def _collect(self, hook_name: str, kind: str, key) -> dict[str, _Registered]:
        found: dict[str, _Registered] = {}
        hook = getattr(self.pm.hook, hook_name)
        # Call each implementation separately so every registration is attributed to its plugin.
        for impl in reversed(hook.get_hookimpls()):
            plugin_name = impl.plugin_name

            def register(value: Any, *args: Any, _plugin: str = plugin_name) -> None:
                name = key(value, *args)
                if name in found:
                    raise DuplicateRegistration(kind, name, found[name].plugin, _plugin)
                found[name] = _Registered((value, *args) if args else value, _plugin)

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
                ) from exc
        return found

    # -- typed hook calls --------------------------------------------------------------------

    def connector_types(self) -> dict[str, type[Connector]]:
        if self._connectors is None:
            self._connectors = self._collect(
                "segsync_register_connectors", "connector type", _connector_type_name
            )
        return {name: reg.value for name, reg in self._connectors.items()}

    def failure_for(self, type_name: str) -> PluginLoadFailure | None:
        """The load failure of the plugin that would have provided connector ``type_name``:
        by convention its entry point is named after the type and its distribution is
        ``segsync-<type>`` (how the repository's own connectors and third parties name them)."""
        wanted = normalize_name(type_name)
        for failure in self.failures:
            names = {normalize_name(failure.name)}
            if failure.distribution:
                names.add(normalize_name(failure.distribution).removeprefix("segsync-"))
            if wanted in names:
                return failure
        return None

    def connector_plugin(self, type_name: str) -> str:
        self.connector_types()
        assert self._connectors is not None
        return self._connectors[type_name].plugin

    def event_types(self) -> dict[str, str]:
        if self._event_types is None:
            self._event_types = self._collect(
                "segsync_register_event_types", "event type", lambda name, *_: name
            )
        return {name: reg.value[1] if isinstance(reg.value, tuple) else "" for name, reg in self._event_types.items()}

    def segment_functions(self) -> dict[str, Any]:
        if self._segment_functions is None:
            self._segment_functions = self._collect(
                "segsync_register_segment_functions", "segment function", lambda fn: fn.name
            )
        return {name: reg.value for name, reg in self._segment_functions.items()}

    def segment_registry(self) -> FunctionRegistry:
        """Every registered segment function, ready for the rule compiler."""
        from segsync.segments import FunctionRegistry

        from segsync.model import Channel

        registry = FunctionRegistry(
            event_types=self.event_types(), channels=[c.value for c in Channel]
        )
        for function in self.segment_functions().values():
            registry.register(function)
        return registry

    def segment_packs(self) -> dict[str, SegmentPack]:
        """Every registered segment pack by name (``[packs.NAME]`` in ``segsync.toml``)."""
        if self._segment_packs is None:
            self._segment_packs = self._collect(
                "segsync_register_segment_packs", "segment pack", lambda pack: pack.name
            )
        return {name: reg.value for name, reg in self._segment_packs.items()}

    def consent_policies(self) -> dict[str, ConsentPolicy]:
        """Every registered consent policy by name (``[consent] policy`` in ``segsync.toml``)."""
        if self._consent_policies is None:
            self._consent_policies = self._collect(
                "segsync_register_consent_policies", "consent policy", lambda policy: policy.name
            )
        return {name: reg.value for name, reg in self._consent_policies.items()}

    def engines(self) -> dict[str, type[Engine]]:
        """Engine name -> class (``[store] engine``; docs/scale.md)."""
        if self._engines is None:
            self._engines = self._collect("segsync_register_engines", "engine", lambda cls: cls.name)
        return {name: reg.value for name, reg in self._engines.items()}

    def add_commands(self, cli: click.Group) -> None:
        self.pm.hook.segsync_register_commands(cli=cli)

    def push(
        self, connector: Connector, changes: Sequence[ContactChange], run_id: int | None
    ) -> WriteResult:
        result = self.pm.hook.segsync_push(connector=connector, changes=changes, run_id=run_id)
        if result is None:
            raise PluginError("no plugin implemented segsync_push (the core's default is missing)")
        return result

    def only_core_pushes(self) -> bool:
        """True when the core's own ``segsync_push`` (which hands the batch to the connector's
        write) is the only implementation: then no plugin code sees the changes on their way."""
        from segsync.default_plugins import push

        impls = self.pm.hook.segsync_push.get_hookimpls()
        return len(impls) == 1 and impls[0].function is push.segsync_push

    def calling_plugin(self, hook_name: str = "segsync_push") -> str | None:
        """The plugin whose ``hook_name`` implementation is running below the caller, if any:
        the innermost implementation frame on the current stack."""
        plugins = self._impl_plugins(hook_name)
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code in plugins:
                return plugins[frame.f_code]
            frame = frame.f_back
        return None

    def raised_by(self, exc: BaseException, hook_name: str = "segsync_push") -> str | None:
        """The plugin whose ``hook_name`` implementation raised ``exc``; None when the innermost
        code it passed through was a connector's own (then the connector's plugin is to blame)."""
        from segsync.connector import Connector

        plugins = self._impl_plugins(hook_name)
        blamed: str | None = None
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_code in plugins:
                blamed = plugins[frame.f_code]
            elif isinstance(frame.f_locals.get("self"), Connector):
                blamed = None
            tb = tb.tb_next
        return blamed

    def _impl_plugins(self, hook_name: str) -> dict[Any, str]:
        """Code object of each implementation of ``hook_name`` → its plugin's name."""
        found = {}
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            code = getattr(impl.function, "__code__", None)
            if code is not None:
                found[code] = impl.plugin_name
        return found

    def score_contacts(self, scores: ScoreRun) -> None:
        """Let every plugin compute the scores ``scores.wanted`` names; a wanted model no plugin
        wrote or declared unavailable is unavailable, naming a plugin that failed."""
        failures = []
        for impl in self.pm.hook.segsync_score_contacts.get_hookimpls():
            try:
                impl.function(scores=scores)
            except Exception as exc:  # one plugin's failure holds its rules, not the run
                log.warning("plugin %r failed in segsync_score_contacts: %s: %s",
                            impl.plugin_name, type(exc).__name__, exc)
                failures.append(f"plugin {impl.plugin_name!r} failed while scoring: "
                                f"{type(exc).__name__}: {exc}")
        for model in sorted(scores.wanted - set(scores.written) - set(scores.failed)):
            scores.unavailable(model, "; ".join(failures) or
                               f"no installed plugin computes model {model!r}")

    def run_finished(self, summary: RunSummary) -> None:
        self._observe("segsync_run_finished", summary=summary)

    def observes_segment_changes(self) -> bool:
        """A plugin implements ``segsync_segment_changes`` (so entries and exits are computed)."""
        return bool(self.pm.hook.segsync_segment_changes.get_hookimpls())

    def segment_changes(self, changes: SegmentChanges) -> None:
        self._observe("segsync_segment_changes", changes=changes)

    def _observe(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of an observing hook; one that raises is logged and skipped."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                impl.function(**kwargs)
            except Exception as exc:  # an observer never changes the run's outcome
                log.warning("plugin %r failed in %s: %s: %s", impl.plugin_name, hook_name, type(exc).__name__, exc)

    def can_demo_serve(self) -> bool:
        """Whether a plugin shows ``segsync demo --serve`` (``segsync_demo_serve``)."""
        return bool(self.pm.hook.segsync_demo_serve.get_hookimpls())

    def demo_serve(self, project: Any, emulated: Sequence[str], forever: bool) -> bool:
        return bool(self.pm.hook.segsync_demo_serve(project=project, emulated=list(emulated), forever=forever))

    # -- introspection -----------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        capabilities_by_plugin: dict[str, dict[str, list[str]]] = {}
        self.connector_types()
        assert self._connectors is not None
        for type_name, reg in self._connectors.items():
            # In the enum's order (reads, then writes), as the contract lists them.
            declared = sorted(getattr(reg.value, "capabilities", ()), key=lambda c: list(type(c)).index(c))
            capabilities_by_plugin.setdefault(reg.plugin, {})[type_name] = [c.value for c in declared]
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist, version, origin = self._distributions.get(name, ("(unknown)", "", None))
            if version is None:
                version = (_version(dist) if origin is BUILT_IN
                           else origin.version or "unknown" if isinstance(origin, metadata.Distribution)
                           else "unknown")
            source = origin if isinstance(origin, InstallSource | None) else install_source(origin)
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            capabilities = dict(sorted(capabilities_by_plugin.get(name, {}).items()))
            infos.append(PluginInfo(name, dist, version, hooks, list(capabilities), capabilities, source))
        return sorted(infos, key=lambda p: p.name)


def _connector_type_name(cls: Any) -> str:
    name = getattr(cls, "type_name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"connector class {cls!r} has no type_name")
    return name


@functools.cache  # the built-in plugins all ask for segsync's
def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"
