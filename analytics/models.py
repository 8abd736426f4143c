from django.db import models


class Link(models.Model):
    """A tracked destination of a campaign: click tokens carry its id, never the URL."""

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="links"
    )
    index = models.PositiveIntegerField()
    url = models.URLField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "index"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "index"], name="link_campaign_index")
        ]

    def __str__(self):
        return self.url
