"""Your own model in: a Python factory (``file.py:function``) or a ``torch.export`` program.

:func:`load_model` turns what a user has into an ``nn.Module`` and an example input that
:func:`dataflow.extract` runs:

- ``"path/to/file.py:factory"``: the file is imported as a fresh module and ``factory()`` is
  called with no arguments; it returns an ``nn.Module`` or ``(module, example_input)``.
- ``"path/to/program.pt2"`` (written by ``torch.export.save``) or an ``ExportedProgram``: the
  program's graph becomes an :class:`ExportedModule` (below).
- an ``nn.Module``, or ``(module, example_input)``.

Without an example input, ``input_shape`` gives one: random floats, or token ids in
``[0, vocab)`` for ``input_dtype="long"`` (``vocab`` defaults to the first ``nn.Embedding``'s
rows).

Exported programs. ``ExportedProgram.module()`` is a ``GraphModule`` of ``torch.ops.aten``
calls (``aten.linear``, ``aten.conv2d``...) whose submodules hold parameters but are never
called, and whose ``train()`` raises: the extractor's module hooks would see one flat module
and no ``Linear``, so nothing could be N:M and every op would land in the root. Instead
:class:`ExportedModule` rebuilds the module tree from the graph: each ``aten.linear``,
``aten.conv2d`` (or a 2-D ``aten.convolution``), ``aten.layer_norm``, ``aten.group_norm``,
``aten.batch_norm`` and ``aten.embedding`` call whose weight is the ``weight`` of module path
``P`` (and whose other parameters are ``P``'s, and ``P`` has no others) becomes a real
``nn.Linear``/``nn.Conv2d``/... at ``P``, called as a module, and so does a decomposed
program's (``run_decompositions()``) linear, ``addmm(b, x, permute(W))`` or ``mm(x, t(W))``;
every other node runs its aten op
inside a scope module at the node's own module path (``nn_module_stack``), so that the
extractor names and files it as it does for the eager model. A program exported from a model
thus gives the workload of the model itself (same layers, N:M, skip lists, MACs). Parameters
and buffers are ``meta`` tensors of the program's shapes: a workload depends on shapes only.
Control flow operators (``torch.cond``, ``map``...) are refused.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from algorithms.memoryformer import MemoryLayer

from .workload import UnmappableOpError

__all__ = ["ExportedModule", "LoadedModel", "ModelFileError", "custom_leaves", "is_model_file",
           "load_model", "parse_shape"]

_DTYPES = {"float": torch.float32, "float32": torch.float32, "half": torch.float16,
           "float16": torch.float16, "bfloat16": torch.bfloat16, "long": torch.int64,
           "int64": torch.int64, "int": torch.int64, "int32": torch.int32}


class ModelFileError(ValueError):
    """A model file, factory or example input that cannot be used; says what to do."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for :func:`dataflow.extract`.

    Attributes
    ----------
    module : nn.Module
    example_input : tuple of torch.Tensor
        ``module(*example_input)`` runs one batch.
    name : str
        ``"file.py:factory"``, ``"program.pt2"`` or the module's class name.
    trace_through : tuple of type
        Leaf module types :func:`dataflow.extract` traces op by op: an exported program's
        scopes, or the model's own leaf modules with parameters (:func:`custom_leaves`).
    """

    module: nn.Module
    example_input: tuple
    name: str
    trace_through: tuple[type, ...] = ()

    @property
    def batch(self) -> int:
        """The leading dimension of the first input (1 for a scalar)."""
        x = self.example_input[0] if self.example_input else None
        return int(x.shape[0]) if torch.is_tensor(x) and x.dim() else 1


def is_model_file(spec) -> bool:
    """Whether ``spec`` names a model file (``*.py[:factory]``, ``*.pt2``), not a zoo name."""
    if isinstance(spec, Path):
        return True
    if not isinstance(spec, str):
        return False
    path = spec.rpartition(":")[0] if ".py:" in spec else spec
    return path.endswith((".py", ".pt2")) or "/" in path


def parse_shape(spec) -> tuple[tuple[int, ...], ...]:
    """Input shapes from ``"8,3,32,32"`` (one input), ``"8,128;8,128"`` (two) or ints.

    Raises
    ------
    ModelFileError
        A dimension that is not a positive integer.
    """
    if isinstance(spec, str):
        parts = [p for p in spec.replace(" ", "").split(";") if p]
        shapes = []
        for p in parts:
            try:
                dims = tuple(int(d) for d in p.split(",") if d)
            except ValueError:
                dims = ()
            shapes.append(dims)
    elif spec and all(isinstance(d, int) for d in spec):
        shapes = [tuple(spec)]
    else:
        shapes = [tuple(s) for s in spec]
    if not shapes or any(not s or min(s) < 1 or any(isinstance(d, bool) for d in s)
                         for s in shapes):
        raise ModelFileError(f"input shape must be comma-separated positive integers such as "
                             f"8,3,32,32 (';' between inputs), not {spec!r}")
    return tuple(shapes)


def load_model(spec, *, example_input=None, input_shape=None, input_dtype=None,
               vocab: int | None = None) -> LoadedModel:
    """A user's model and one batch of input for it.

    Parameters
    ----------
    spec : str, Path, nn.Module, ExportedProgram or (nn.Module, example_input)
        ``"file.py:factory"``, ``"program.pt2"``, or the model itself.
    example_input : torch.Tensor or tuple, optional
        One batch; default the factory's, or the exported program's (its inputs' shapes).
    input_shape : str or tuple, optional
        Shape of a generated input (``"8,3,32,32"``; ``;`` between several inputs); wins
        over the factory's example input.
    input_dtype : {"float", "long", ...} or torch.dtype, optional
        Of the generated input, default float (``long``: token ids).
    vocab : int, optional
        Token ids are drawn from ``[0, vocab)``; default the first ``nn.Embedding``'s rows.

    Raises
    ------
    ModelFileError
        A missing or unreadable file, no such factory, a factory that does not return a
        module, no example input and no ``input_shape``, or token ids without a vocabulary.
    """
    if isinstance(spec, str | Path) and str(spec).endswith(".pt2"):
        return _load_exported(_read_exported(Path(spec)), Path(spec).name, example_input,
                              input_shape)
    if isinstance(spec, torch.export.ExportedProgram):
        return _load_exported(spec, "ExportedProgram", example_input, input_shape)
    if isinstance(spec, str | Path):
        module, x, name = _call_factory(str(spec))
    elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], nn.Module):
        (module, x), name = spec, type(spec[0]).__name__
    elif isinstance(spec, nn.Module):
        module, x, name = spec, None, type(spec).__name__
    else:
        raise ModelFileError(f"a model is a zoo name, 'file.py:factory', 'program.pt2', an "
                             f"nn.Module or an ExportedProgram, not {type(spec).__name__}")
    if example_input is not None:
        x = example_input
    if input_shape is not None:
        x = _generate(module, parse_shape(input_shape), input_dtype, vocab)
    elif input_dtype is not None or vocab is not None:
        raise ModelFileError("input dtype and vocab describe a generated input: give its "
                             "shape too (--input-shape)")
    if x is None:
        raise ModelFileError(f"model {name} comes with no example input: give its shape, e.g. "
                             f"--input-shape 8,3,32,32 (input_shape=...), or return "
                             f"(model, example_input) from the factory")
    return LoadedModel(module, _as_inputs(x, name), name, custom_leaves(module))


def custom_leaves(module: nn.Module) -> tuple[type, ...]:
    """The types of ``module``'s leaf modules with parameters that :func:`dataflow.extract` has
    no lowering for as a whole (not ``Linear``, ``Conv2d``, ``Embedding``, a norm or a memory
    layer): a user's own, traced through op by op (their weight GEMMs are dense)."""
    known = (nn.Linear, nn.Conv2d, nn.Embedding, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
             nn.modules.batchnorm._BatchNorm, MemoryLayer)
    return tuple(dict.fromkeys(
        type(m) for m in module.modules() if next(m.children(), None) is None
        and next(m.parameters(False), None) is not None and not isinstance(m, known)))


# --- Python factories ---------------------------------------------------------------------------

def _call_factory(spec: str) -> tuple[nn.Module, object, str]:
    path, sep, factory = spec.rpartition(":") if ".py:" in spec else (spec, "", "")
    if not sep or not factory.isidentifier():
        raise ModelFileError(f"name the function that builds the model: {path}:FACTORY "
                             f"(e.g. mymodel.py:make_model), not {spec!r}")
    file = Path(path)
    if not file.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    name = f"{file.name}:{factory}"
    mod_name = f"_satmem_model_{abs(hash(str(file.resolve())))}"
    loader = importlib.util.spec_from_file_location(mod_name, file)
    module = importlib.util.module_from_spec(loader)
    sys.modules[mod_name] = module  # dataclasses and pickling look the module up
    try:
        loader.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(mod_name, None)
        raise ModelFileError(f"importing {path} failed: {type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}") from e
    fn = getattr(module, factory, None)
    if fn is None or not callable(fn):
        have = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                      and getattr(v, "__module__", None) == mod_name)
        what = "no function" if fn is None else "not a function:"
        raise ModelFileError(f"{path} has {what} {factory!r}; its functions and classes are "
                             f"{', '.join(have) or 'none'}")
    try:
        out = fn()
    except Exception as e:
        hint = "; the factory must take no arguments (give them defaults)" if isinstance(
            e, TypeError) else ""
        raise ModelFileError(f"calling {name}() failed: {type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}{hint}") from e
    if isinstance(out, nn.Module):
        return out, None, name
    if (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], nn.Module)):
        return out[0], out[1], name
    raise ModelFileError(f"{name}() returned {type(out).__name__}, not an nn.Module or "
                         f"(nn.Module, example_input)")


def _as_inputs(x, name: str) -> tuple:
    xs = tuple(x) if isinstance(x, list | tuple) else (x,)
    if not xs or not any(torch.is_tensor(t) for t in xs):
        raise ModelFileError(f"the example input of {name} must be a tensor or a tuple of "
                             f"tensors, not {type(x).__name__}")
    return xs


def _generate(module: nn.Module, shapes, dtype, vocab) -> tuple:
    p = next(module.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    if dtype is None or isinstance(dtype, str) and not dtype:
        dtype = "float"
    dt = dtype if isinstance(dtype, torch.dtype) else _DTYPES.get(str(dtype).lower())
    if dt is None:
        raise ModelFileError(f"input dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
    if dt.is_floating_point:
        if vocab is not None:
            raise ModelFileError("vocab is for token-id inputs (input dtype long)")
        return tuple(torch.randn(s, device=device, dtype=dt) for s in shapes)
    if vocab is None:
        emb = next((m for m in module.modules() if isinstance(m, nn.Embedding)), None)
        if emb is None:
            raise ModelFileError("token ids (input dtype long) need a vocabulary bound: give "
                                 "--vocab N (vocab=N); the model has no nn.Embedding to take "
                                 "it from")
        vocab = emb.num_embeddings
    if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < 1:
        raise ModelFileError(f"vocab must be a positive integer, not {vocab!r}")
    return tuple(torch.randint(0, vocab, s, device=device, dtype=dt) for s in shapes)


# --- exported programs --------------------------------------------------------------------------

def _read_exported(path: Path):
    if not path.is_file():
        raise ModelFileError(f"exported program {path} does not exist")
    try:
        return torch.export.load(path)
    except Exception as e:
        raise ModelFileError(f"cannot read {path} as a torch.export program (write it with "
                             f"torch.export.save): {type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}") from e


def _load_exported(program, name: str, example_input, input_shape) -> LoadedModel:
    module = ExportedModule(program)
    if example_input is not None:
        xs = _as_inputs(example_input, name)
        xs = tuple(t.to("meta") if torch.is_tensor(t) else t for t in xs)
    else:
        shapes = parse_shape(input_shape) if input_shape is not None else None
        xs = module.example_input(shapes)
    return LoadedModel(module, xs, name, (ExportedModule, _Scope))


class _Scope(nn.Module):
    """A module path of the exported model: holds its parameters, runs its nodes' ops."""

    def forward(self, fn, args, kwargs):
        return fn(*args, **kwargs)


_LAYERS = {
    # aten op: (weight argument, bias argument, parameter names the layer owns)
    "linear": (1, 2), "conv2d": (1, 2), "convolution": (1, 2), "layer_norm": (2, 3),
    "group_norm": (2, 3), "batch_norm": (1, 2), "embedding": (0, None),
    # a decomposed program's linear: addmm(b, x, permute(W, [1, 0])) or mm(x, t(W))
    "addmm": (2, 0), "mm": (1, None),
}
_TRANSPOSES = ("t", "permute", "transpose")


class ExportedModule(nn.Module):
    """The module tree of a ``torch.export`` program, rebuilt for :func:`dataflow.extract`
    (see the module docstring).

    Parameters
    ----------
    program : torch.export.ExportedProgram

    Raises
    ------
    UnmappableOpError
        A higher-order operator (``torch.cond``, ``map``, a ``no_grad`` region...) or a graph
        input kind other than parameters, buffers, constants and user inputs.
    """

    def __init__(self, program) -> None:
        super().__init__()
        from torch.export.graph_signature import InputKind

        self._graph = program.graph
        sig = program.graph_signature
        self._inputs: list[tuple[str, str, object]] = []  # (placeholder, kind, target)
        state = {**program.state_dict, **program.constants}
        owned: dict[str, list[str]] = {}  # module path -> its direct parameters and buffers
        for spec in sig.input_specs:
            kind = spec.kind
            if kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
                owned.setdefault(spec.target.rpartition(".")[0], []).append(spec.target)
                self._inputs.append((spec.arg.name, "state", spec.target))
            elif kind == InputKind.USER_INPUT:
                self._inputs.append((spec.arg.name, "user", None))
            else:
                raise UnmappableOpError(f"exported program input {spec.arg.name!r} of kind "
                                        f"{kind.name} is not supported")
        params = {s.target for s in sig.input_specs if s.kind == InputKind.PARAMETER}
        placeholder = {name: target for name, kind, target in self._inputs if kind == "state"}
        self._output_specs = sig.output_specs
        self._layers: dict[str, str] = {}  # node name -> the module path it calls
        layers: dict[str, nn.Module] = {}
        for node in self._graph.nodes:
            if node.op == "call_function" and isinstance(node.target,
                                                         torch._ops.HigherOrderOperator):
                raise UnmappableOpError(f"cannot map the higher-order operator "
                                        f"{node.target.__name__} (node {node.name!r}) of the "
                                        f"exported program (control flow, or a no_grad or "
                                        f"autocast region): export the model without it")
            path, mod = self._layer_of(node, placeholder, params, owned, state)
            if mod is None or (path in layers and not _same_layer(layers[path], mod)):
                continue  # not a layer, or a second kind of layer at one path: an op
            layers.setdefault(path, mod)
            self._layers[node.name] = path
        # modules and parameters in the order the graph first uses them, as the model's own
        # definition order usually is (default_skip's stem and classifier)
        done: set[str] = set()
        for node in self._graph.nodes:
            if node.name in self._layers and self._layers[node.name] not in done:
                path = self._layers[node.name]
                parent, _, attr = path.rpartition(".")
                self._scope(parent).add_module(attr, layers[path])
                done.add(path)
            for arg in node.all_input_nodes:
                target = placeholder.get(arg.name)
                if target is None or target in done or target.rpartition(".")[0] in layers:
                    continue
                done.add(target)
                path, _, attr = target.rpartition(".")
                t = state[target]
                value = torch.empty_like(t, device="meta")
                if target in params:
                    self._scope(path).register_parameter(attr, nn.Parameter(value,
                                                                            t.requires_grad))
                else:
                    self._scope(path).register_buffer(attr, value)
        self._unused = sorted(set(placeholder.values()) - done - {
            t for t in placeholder.values() if t.rpartition(".")[0] in layers})
        self._scopes: dict[str, str] = {}  # node name -> the scope module that runs it
        for node in self._graph.nodes:
            stack = node.meta.get("nn_module_stack") or {}
            for path, _ in reversed(list(stack.values())):
                path = re.sub(r"@\d+$", "", path)
                if not path:
                    break
                mod = self._find(path)
                if mod is None or isinstance(mod, _Scope):
                    self._scope(path)
                    self._scopes[node.name] = path
                    break
        kinds = {n: k for n, k, _ in self._inputs}
        self._users = [node for node in self._graph.nodes
                       if node.op == "placeholder" and kinds.get(node.name) == "user"]

    # ---- the module tree --------------------------------------------------------------------
    def _find(self, path: str) -> nn.Module | None:
        try:
            return self.get_submodule(path)
        except AttributeError:
            return None

    def _scope(self, path: str) -> nn.Module:
        mod: nn.Module = self
        for part in path.split(".") if path else ():
            child = mod._modules.get(part)
            if child is None:
                child = _Scope()
                mod.add_module(part, child)
            mod = child
        return mod

    @staticmethod
    def _layer_of(node, placeholder, params, owned, state):
        """``(path, layer)`` when ``node`` is a whole layer of one module path, else
        ``(None, None)``."""
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            return None, None
        op = node.target._opname
        if op not in _LAYERS:
            return None, None
        wi, bi = _LAYERS[op]
        args = list(node.args)

        def target(i):
            a = args[i] if i is not None and i < len(args) else None
            return placeholder.get(a.name) if isinstance(a, torch.fx.Node) else None

        w = target(wi)
        if op in ("addmm", "mm"):  # the weight is a transposed parameter
            t = args[wi]
            if not (isinstance(t, torch.fx.Node) and isinstance(t.target, torch._ops.OpOverload)
                    and t.target._opname in _TRANSPOSES and isinstance(t.args[0], torch.fx.Node)
                    and t.args[0].meta["val"].dim() == 2):
                return None, None
            w = placeholder.get(t.args[0].name)
        if w is None or w not in params or not w.endswith(".weight"):
            return None, None
        path = w[: -len(".weight")]
        b = target(bi)
        if bi is not None and bi < len(args) and args[bi] is not None and b != f"{path}.bias":
            return None, None
        tensors = {t for i, a in enumerate(args) if (t := target(i)) is not None} | {w}
        if set(owned.get(path, ())) - tensors - {f"{path}.num_batches_tracked"}:
            return None, None  # the path has parameters or buffers this call does not use
        if not path or any(p.startswith(path + ".") for p in owned):
            return None, None  # the root, or a module with children, is not one layer
        weight = state[w]
        layer = _make_layer(op, args, weight, b is not None)
        return path, None if layer is None else layer.to(weight.dtype)

    # ---- inputs -------------------------------------------------------------------------------
    def example_input(self, shapes=None) -> tuple:
        """``meta`` tensors of the program's input shapes (or ``shapes``) and dtypes."""
        vals = [node.meta.get("val") for node in self._users]
        if shapes is not None and len(shapes) != len(vals):
            raise ModelFileError(f"the exported program takes {len(vals)} input"
                                 f"{'s' if len(vals) != 1 else ''}, not {len(shapes)} shapes")
        out = []
        for i, v in enumerate(vals):
            if not torch.is_tensor(v):
                out.append(v)
                continue
            try:
                shape = shapes[i] if shapes is not None else tuple(int(d) for d in v.shape)
            except Exception:  # a dynamic dimension without a hint
                raise ModelFileError("the exported program has dynamic input dimensions: give "
                                     "the input shape (--input-shape)") from None
            out.append(torch.zeros(shape, dtype=v.dtype, device="meta"))
        return tuple(out)

    # ---- running the graph ----------------------------------------------------------------------
    def forward(self, *inputs):
        if len(inputs) != len(self._users):
            raise ModelFileError(f"the exported program takes {len(self._users)} inputs, not "
                                 f"{len(inputs)}")
        env: dict[str, object] = {}
        user = iter(inputs)
        state = dict(self._inputs_state())
        for node in self._graph.nodes:
            if node.op == "placeholder":
                env[node.name] = next(user) if node in self._users else state.get(node.name)
            elif node.op == "call_function":
                args = torch.fx.node.map_arg(node.args, lambda n: env[n.name])
                kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n.name])
                env[node.name] = self._run(node, args, kwargs)
            elif node.op == "output":
                outs = torch.fx.node.map_arg(node.args[0], lambda n: env[n.name])
                return self._user_outputs(outs)
            else:
                raise UnmappableOpError(f"cannot run node {node.name!r} ({node.op}) of the "
                                        f"exported program")
        return None

    def _inputs_state(self):
        for name, kind, target in self._inputs:
            if kind == "state" and target not in self._unused:
                path, _, attr = target.rpartition(".")
                yield name, getattr(self.get_submodule(path), attr)

    def _run(self, node, args, kwargs):
        path = self._layers.get(node.name)
        if path is not None:
            layer = self.get_submodule(path)
            op = node.target._opname
            return layer(args[1] if op in ("embedding", "addmm") else args[0])
        fn = node.target
        if not isinstance(fn, torch._ops.OpOverload):  # operator.getitem, sym ints
            return fn(*args, **kwargs)
        scope = self._scopes.get(node.name)
        if scope:
            return self.get_submodule(scope)(fn, args, kwargs)
        return fn(*args, **kwargs)

    def _user_outputs(self, outs):
        from torch.export.graph_signature import OutputKind

        kinds = [s.kind for s in self._output_specs]
        vals = [v for v, k in zip(outs, kinds, strict=True) if k == OutputKind.USER_OUTPUT]
        return vals[0] if len(vals) == 1 else tuple(vals)


def _make_layer(op: str, args: Sequence, weight: torch.Tensor, bias: bool) -> nn.Module:
    """The ``nn`` layer an aten call with these arguments is (on ``meta``)."""
    def arg(i, default):
        return args[i] if i < len(args) else default

    with torch.device("meta"):
        if op in ("linear", "addmm", "mm"):
            return nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
        if op in ("conv2d", "convolution"):
            if weight.dim() != 4 or (op == "convolution" and arg(6, False)):
                return None
            groups = arg(8 if op == "convolution" else 6, 1)
            return nn.Conv2d(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]),
                             stride=tuple(arg(3, 1)) if isinstance(arg(3, 1), list) else
                             arg(3, 1), padding=_pad(arg(4, 0)), dilation=_pair(arg(5, 1)),
                             groups=groups, bias=bias)
        if op == "layer_norm":
            return nn.LayerNorm(tuple(arg(1, ())), eps=arg(4, 1e-5), bias=bias)
        if op == "group_norm":
            return nn.GroupNorm(arg(1, 1), weight.shape[0], eps=arg(4, 1e-5))
        if op == "batch_norm":
            x = args[0].meta.get("val") if isinstance(args[0], torch.fx.Node) else None
            cls = nn.BatchNorm2d if x is not None and x.dim() == 4 else nn.BatchNorm1d
            return cls(weight.shape[0], eps=arg(7, 1e-5), momentum=arg(6, 0.1))
        pad = arg(2, -1)
        return nn.Embedding(weight.shape[0], weight.shape[1],
                            padding_idx=None if pad is None or pad < 0 else pad)


def _pair(v):
    return tuple(v) if isinstance(v, list | tuple) else v


def _pad(v):
    return v if isinstance(v, str) else _pair(v)


def _same_layer(a: nn.Module | None, b: nn.Module | None) -> bool:
    return a is not None and b is not None and type(a) is type(b) and repr(a) == repr(b)
