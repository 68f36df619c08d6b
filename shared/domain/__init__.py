"""Domain vocabulary every service shares: codes, the Swedish working-day calendar, validated
contact channels and a stated legal basis."""
