import io
import random

import pytest
import torch

from dropsearch.controller import Proposal, RandomController, ReinforceController
from dropsearch.search.space import Decision, SearchSpace

torch.set_num_threads(1)
SPACE = SearchSpace(tuple(Decision(f"d{i}", tuple(range(6))) for i in range(12)))


def _matches(tokens, target):
    return sum(int(a == b) for a, b in zip(tokens, target, strict=True))


def _run(controller, target, rng, samples=400, batch=8):
    best = -1
    for _ in range(samples // batch):
        proposals = controller.sample(batch)
        rewards = [_matches(p.tokens, target) / 12 + rng.gauss(0, 0.05) for p in proposals]
        best = max(best, *(_matches(p.tokens, target) for p in proposals))
        controller.update(proposals, rewards)
    return best


def test_reinforce_finds_the_hidden_target_and_beats_random(record_property):
    found, random_best = [], []
    for seed in range(5):
        target = [random.Random(1000 + seed).randrange(6) for _ in range(12)]
        ctrl = ReinforceController(SPACE, lr=0.01, entropy_weight=0.01, baseline_decay=0.5, seed=seed)
        _run(ctrl, target, random.Random(seed))
        found.append(_matches(ctrl.most_likely(), target))
        random_best.append(_run(RandomController(SPACE, seed=seed), target, random.Random(seed)))
    record_property("reinforce_most_likely_matches", found)
    record_property("random_best_of_400_matches", random_best)
    print(f"REINFORCE most likely: {found}; random search best of 400: {random_best} (of 12)")
    assert sum(m >= 11 for m in found) >= 4, found
    assert max(random_best) <= 9  # chance of >= 10/12 among 400 uniform samples is ~1e-4
    assert min(found) > max(random_best)


def _snapshot(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("kind", ["reinforce", "random"])
def test_save_load_continue_equals_straight_through(kind):
    def make():
        if kind == "random":
            return RandomController(SPACE, seed=7)
        return ReinforceController(SPACE, lr=0.02, seed=7)

    def reward(p):
        return p.tokens[0] / 5 - 0.1 * p.tokens[3]

    straight, first = make(), make()
    for ctrl in (straight, first):
        for _ in range(3):
            batch = ctrl.sample(8)
            ctrl.update(batch, [reward(p) for p in batch])
    resumed = make()
    resumed.sample(5)  # a different state that load_state_dict must overwrite
    resumed.load_state_dict(_snapshot(first.state_dict()))
    for _ in range(3):
        a, b = straight.sample(8), resumed.sample(8)
        assert a == b
        assert straight.update(a, [reward(p) for p in a]) == resumed.update(b, [reward(p) for p in b])
    assert straight.most_likely() == resumed.most_likely()
    assert straight.best(3) == resumed.best(3)
    assert resumed.n_updates == 6 and resumed.n_sampled == 48


def test_baseline_is_an_ema_and_the_step_follows_the_advantage():
    space = SearchSpace((Decision("a", (0, 1, 2)), Decision("b", (0, 1))))
    ctrl = ReinforceController(space, lr=0.05, baseline_decay=0.8, entropy_weight=0.0, seed=0)
    good, bad = Proposal((2, 1)), Proposal((0, 0))
    before = ctrl.log_prob([good.tokens, bad.tokens])
    stats = ctrl.update([good, bad], [1.0, 0.0])
    assert stats["baseline"] == pytest.approx(0.5)  # first batch: its mean
    after = ctrl.log_prob([good.tokens, bad.tokens])
    # first batch: advantages (+0.5, -0.5) raise the good proposal and lower the bad one
    assert after[0] > before[0] and after[1] < before[1]
    stats = ctrl.update([good], [2.0])
    assert stats["baseline"] == pytest.approx(0.8 * 0.5 + 0.2 * 2.0)
    stats = ctrl.update([good, bad], [0.0, 0.0])
    assert stats["baseline"] == pytest.approx(0.8 * 0.8 + 0.2 * 0.0)
    assert stats["mean_reward"] == 0.0


def test_first_step_is_adam_on_the_naive_reinforce_gradient():
    space = SearchSpace((Decision("a", (0, 1, 2)), Decision("b", (0, 1)), Decision("c", (0, 1, 2, 3))))
    ctrl = ReinforceController(space, lr=0.01, entropy_weight=0.1, seed=4, grad_clip=None)
    batch, rewards = ctrl.sample(5), [0.3, 0.9, 0.1, 0.5, 0.7]
    params = dict(ctrl.policy.named_parameters())
    before = {k: v.detach().clone() for k, v in params.items()}
    # naive reference: one example at a time, advantage against the batch mean (the first baseline)
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    for p, r in zip(batch, rewards, strict=True):
        log_p, entropy = ctrl.policy(torch.tensor([p.tokens]))
        loss = -(r - sum(rewards) / 5) * log_p.sum() / 5 - 0.1 * entropy.sum() / 5
        for k, g in zip(params, torch.autograd.grad(loss, list(params.values()), allow_unused=True), strict=True):
            grads[k] += 0 if g is None else g
    ctrl.update(batch, rewards)
    compared = 0
    for k, v in params.items():  # Adam's first step is lr * g / (|g| + eps)
        expected = before[k] - 0.01 * grads[k] / (grads[k].abs() + 1e-8)
        clear = grads[k].abs() > 1e-5  # near-zero gradients make g / (|g| + eps) ill-conditioned
        compared += int(clear.sum())
        torch.testing.assert_close(v.detach()[clear], expected[clear], atol=1e-6, rtol=0)
        assert ((v.detach() - before[k]).abs() <= 0.01 + 1e-6).all()
    assert compared > 5000


def test_proposals_and_best():
    space = SearchSpace((Decision("a", (0, 1, 2)), Decision("b", (0, 1))))
    ctrl = ReinforceController(space, seed=3)
    batch = ctrl.sample(4)
    assert [p.index for p in batch] == [0, 1, 2, 3]
    torch.testing.assert_close(torch.tensor([p.log_prob for p in batch]), ctrl.log_prob([p.tokens for p in batch]))
    ctrl.update([Proposal((1, 1)), Proposal((2, 0)), Proposal((1, 1)), Proposal((0, 0))], [0.2, 0.5, 0.6, 0.1])
    best = ctrl.best(2)
    assert [(p.tokens, p.reward) for p in best] == [((2, 0), 0.5), ((1, 1), pytest.approx(0.4))]
    with pytest.raises(ValueError, match="got 2 proposals but 1 rewards"):
        ctrl.update(batch[:2], [1.0])
    with pytest.raises(ValueError, match="rewards must be finite"):
        ctrl.update(batch[:1], [float("nan")])
    with pytest.raises(ValueError, match="token 3 of decision 'a'"):
        ctrl.update([Proposal((3, 0))], [1.0])


def test_warm_start_moves_the_policy_towards_good_points():
    space = SearchSpace((Decision("a", tuple(range(5))), Decision("b", tuple(range(5)))))
    ctrl = ReinforceController(space, lr=0.05, baseline_decay=0.5, entropy_weight=0.0, seed=0)
    rng = random.Random(0)
    pairs = [((rng.randrange(5), rng.randrange(5)), 0.0) for _ in range(60)] + [((4, 1), 1.0)] * 20
    rng.shuffle(pairs)
    assert ctrl.warm_start(pairs, batch_size=8) == 10
    assert ctrl.n_updates == 10 and len(ctrl.history) == 80 and ctrl.n_sampled == 0
    assert ctrl.most_likely() == (4, 1)
    assert ctrl.best(1)[0].tokens == (4, 1)


def test_random_controller_is_uniform_and_reproducible():
    space = SearchSpace((Decision("a", (0, 1, 2)), Decision("b", (0, 1, 2, 3))))
    ctrl = RandomController(space, seed=5)
    tokens = [p.tokens for p in ctrl.sample(6000)]
    for pos, size in ((0, 3), (1, 4)):
        counts = [sum(t[pos] == k for t in tokens) for k in range(size)]
        expected = len(tokens) / size
        assert sum((c - expected) ** 2 / expected for c in counts) < 16.3  # df <= 3, p ~ 0.001
    assert [p.tokens for p in RandomController(space, seed=5).sample(6000)] == tokens
    assert ctrl.sample(1)[0].log_prob == pytest.approx(-torch.log(torch.tensor(12.0)).item())
    assert RandomController(space).most_likely() == (0, 0)


def test_load_state_dict_checks_kind_and_space():
    ctrl = ReinforceController(SPACE, seed=0)
    other = SearchSpace(tuple(Decision(f"d{i}", tuple(range(5))) for i in range(12)))
    with pytest.raises(ValueError, match="different search space"):
        ReinforceController(other).load_state_dict(ctrl.state_dict())
    with pytest.raises(ValueError, match="'reinforce' controller, not 'random'"):
        RandomController(SPACE).load_state_dict(ctrl.state_dict())
    with pytest.raises(ValueError, match="baseline_decay must be in"):
        ReinforceController(SPACE, baseline_decay=1.0)
