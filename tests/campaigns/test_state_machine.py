import pytest

from campaigns.models import Campaign, CampaignTransitionError
from campaigns.services import campaign_transition
from tests.support.factories import CampaignFactory

S = Campaign.Status


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (S.DRAFT, S.SCHEDULED),
        (S.SCHEDULED, S.RUNNING),
        (S.RUNNING, S.PAUSED),
        (S.PAUSED, S.RUNNING),
        (S.RUNNING, S.FINISHED),
        (S.PAUSED, S.CANCELLED),
        (S.SCHEDULED, S.DRAFT),
        (S.DRAFT, S.CANCELLED),
    ],
)
def test_legal_moves_are_made(db, start, to):
    campaign = CampaignFactory(bare=True, name="c", status=start)
    campaign_transition(campaign=campaign, to=to)
    campaign.refresh_from_db()
    assert campaign.status == to


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (S.DRAFT, S.PAUSED),
        (S.FINISHED, S.RUNNING),
        (S.CANCELLED, S.SCHEDULED),
        (S.DRAFT, S.FINISHED),
        (S.SCHEDULED, S.PAUSED),
        (S.PAUSED, S.FINISHED),
    ],
)
def test_illegal_moves_are_refused_with_a_clear_message(db, start, to):
    campaign = CampaignFactory(bare=True, name="c", status=start)
    with pytest.raises(CampaignTransitionError) as excinfo:
        campaign_transition(campaign=campaign, to=to)
    assert S(start).label.lower() in str(excinfo.value)
    assert S(to).label.lower() in str(excinfo.value)
    campaign.refresh_from_db()
    assert campaign.status == start


def test_a_move_is_refused_when_the_database_state_changed_meanwhile(db):
    campaign = CampaignFactory(bare=True, name="c", status=S.RUNNING)
    Campaign.objects.filter(pk=campaign.pk).update(status=S.PAUSED)  # another process
    with pytest.raises(CampaignTransitionError, match="changed meanwhile"):
        campaign_transition(campaign=campaign, to=S.FINISHED)
    assert Campaign.objects.get(pk=campaign.pk).status == S.PAUSED


def test_the_reason_is_recorded(db):
    campaign = CampaignFactory(bare=True, name="c", status=S.RUNNING)
    campaign_transition(campaign=campaign, to=S.PAUSED, reason="Because.")
    assert Campaign.objects.get(pk=campaign.pk).status_reason == "Because."
