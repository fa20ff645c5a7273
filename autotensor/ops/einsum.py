"""einsum: a primitive, not a composite. Written with broadcast multiplies and a sum it would
build the full product over every index (b*i*j*k numbers for 'bij,bjk->bik'); np.einsum
contracts without that, and each operand's gradient is one more einsum."""

from __future__ import annotations

import string

import numpy as np

from ..function import Function, call
from .movement import BroadcastTo, Reshape


class Einsum(Function):
    """z = einsum(equation, x1, x2, ...): sum over the indices missing from the output.

    The gradient of operand i is einsum('out,others->i', g, *others), broadcast back along
    the indices that appear in operand i only.
    """

    def forward(self, *xs, equation):
        self.ins, self.out = parse_einsum(equation, [np.shape(x) for x in xs])
        self.shapes = [np.shape(x) for x in xs]
        self.saved = xs
        return np.einsum(f"{','.join(self.ins)}->{self.out}", *xs, optimize=len(xs) > 2)

    def backward(self, g):
        xs = self.saved
        grads = []
        for i, sub in enumerate(self.ins):
            if not self.needs_grad(i):
                grads.append(None)
                continue
            others = [s for j, s in enumerate(self.ins) if j != i]
            seen = self.out + "".join(others)
            kept = "".join(c for c in sub if c in seen)
            eq = ",".join([self.out, *others]) + "->" + kept
            gi = call(Einsum, g, *(x for j, x in enumerate(xs) if j != i), equation=eq)
            if kept != sub:             # indices summed out of operand i alone: broadcast back
                gi = call(Reshape, gi, shape=tuple(n if c in seen else 1
                                                   for c, n in zip(sub, self.shapes[i])))
                gi = call(BroadcastTo, gi, shape=self.shapes[i])
            grads.append(gi)
        return tuple(grads)


def parse_einsum(equation, shapes):
    """(input subscripts, output subscripts) in explicit form: '...' spelled out as letters,
    the implicit output (no '->') made explicit as numpy does (the once-used indices, sorted)."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: '{equation}' names {len(ins)} operands, got {len(shapes)}")
    free = [c for c in string.ascii_letters if c not in eq]
    n_ell = max([len(s) - (len(i) - 3) for i, s in zip(ins, shapes) if "..." in i] or [0])
    ell = "".join(free[:n_ell])
    spelled = []
    for sub, shape in zip(ins, shapes):
        if "..." in sub:
            k = len(shape) - (len(sub) - 3)
            sub = sub.replace("...", ell[n_ell - k:] if k > 0 else "")
        if len(sub) != len(shape) or not all(c.isalpha() for c in sub):
            raise ValueError(f"einsum: subscripts '{sub}' do not fit an operand of shape {shape}")
        if len(set(sub)) != len(sub):
            raise NotImplementedError(f"einsum: repeated index in '{sub}' (a diagonal or trace) "
                                      "is not supported")
        spelled.append(sub)
    if arrow:
        out = out.replace("...", ell)
    else:
        letters = "".join(spelled)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1
                                   and c not in ell))
    if len(set(out)) != len(out) or any(c not in "".join(spelled) for c in out):
        raise ValueError(f"einsum: bad output subscripts in '{equation}'")
    return spelled, out


def einsum(equation, *operands):
    """Einstein summation over Tensors, as torch.einsum/np.einsum: einsum('ij,jk->ik', a, b).
    Operands may also be given as one list. Indices repeated inside one operand (traces,
    diagonals) are not supported."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return Einsum.apply(*operands, equation=equation)
