import itertools
import math

import torch

from dropsearch.controller._policy import LSTMPolicy

torch.set_num_threads(1)


def test_sampled_log_prob_matches_teacher_forcing_and_joint_sums_to_one():
    g = torch.Generator().manual_seed(0)
    sizes = (3, 1, 4, 2)
    policy = LSTMPolicy(sizes, embedding_size=8, hidden_size=16, generator=g)
    with torch.no_grad():  # sharpen the policy so the check is not trivially uniform
        policy.head_w.mul_(20)
    tokens, log_prob = policy.sample(64, generator=g)
    chosen, entropy = policy(tokens)
    torch.testing.assert_close(chosen.sum(-1), log_prob)
    assert (tokens < torch.tensor(sizes)).all() and (tokens >= 0).all()
    everything = torch.tensor(list(itertools.product(*(range(s) for s in sizes))))
    joint, _ = policy(everything)
    assert math.isclose(joint.sum(-1).exp().sum().item(), 1.0, rel_tol=1e-5)
    # entropy of decision 0 (no conditioning) by hand from its probabilities
    p0 = torch.stack([joint[everything[:, 0] == k, 0][0].exp() for k in range(3)])
    assert math.isclose(entropy[0, 0].item(), -(p0 * p0.log()).sum().item(), rel_tol=1e-5)
    assert torch.all(entropy[:, 1] == 0)  # a single choice has no entropy


def test_empirical_frequencies_match_the_policy():
    g = torch.Generator().manual_seed(1)
    policy = LSTMPolicy((3, 2), embedding_size=8, hidden_size=8, generator=g)
    with torch.no_grad():
        policy.head_w.mul_(15)
    tokens, _ = policy.sample(20000, generator=g)
    everything = torch.tensor(list(itertools.product(range(3), range(2))))
    probs = policy(everything)[0].sum(-1).exp()
    counts = torch.stack([(tokens == t).all(-1).sum() for t in everything]).double()
    expected = probs.double() * len(tokens)
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 20.5  # 5 degrees of freedom, p ~ 0.001


def test_greedy_decode_is_argmax_step_by_step():
    g = torch.Generator().manual_seed(2)
    policy = LSTMPolicy((4, 3, 5), embedding_size=8, hidden_size=8, generator=g)
    with torch.no_grad():
        policy.head_w.mul_(10)
    greedy, _ = policy.sample(1, greedy=True)
    prefix = []
    for i, size in enumerate((4, 3, 5)):  # naive reference: try every choice of step i after the greedy prefix
        best = max(range(size), key=lambda k: policy(torch.tensor([[*prefix, k, *[0] * (2 - i)]]))[0][0, i].item())
        prefix.append(best)
    assert greedy[0].tolist() == prefix
