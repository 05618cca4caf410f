from cdr_platform.lib.reference import numbering_plan
from cdr_platform.lib.reference.network import CELL_CATALOGUE, CELLS_BY_ID
from cdr_platform.lib.reference.subscribers import generate_subscribers, read_subscribers_csv, write_subscribers_csv


def test_numbering_plan_longest_prefix_and_length():
    assert numbering_plan.lookup("+212661234567").operator_id == "IAM"
    assert numbering_plan.lookup("+212600123456").operator_id == "INWI"
    assert numbering_plan.lookup("+212612123456").operator_id == "ORANGE"
    assert numbering_plan.lookup("+33612345678").country == "FR"
    assert numbering_plan.lookup("+2126612345") is None  # too short
    assert numbering_plan.lookup("+21266123456789") is None  # too long
    assert numbering_plan.lookup("+999123456789") is None  # no such country
    assert numbering_plan.lookup("0661234567") is None  # national format is not E.164
    assert not numbering_plan.is_valid_msisdn(212661234567)


def test_subscribers_are_300_unique_valid_and_deterministic(tmp_path):
    subs = generate_subscribers()
    assert len(subs) == 300
    assert len({s.msisdn for s in subs}) == 300
    for s in subs:
        entry = numbering_plan.lookup(s.msisdn)
        assert entry is not None and entry.operator_id == s.operator_id
        assert CELLS_BY_ID[s.home_cell_id].operator_id == s.operator_id
    assert {s.operator_id for s in subs} == {"IAM", "ORANGE", "INWI"}
    assert generate_subscribers() == subs
    assert generate_subscribers(seed=1) != subs
    path = write_subscribers_csv(subs, tmp_path / "subscribers.csv")
    assert read_subscribers_csv(path) == subs


def test_cell_catalogue_is_unique_per_operator():
    assert len(CELLS_BY_ID) == len(CELL_CATALOGUE) == 120
