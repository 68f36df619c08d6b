"""Referral routing: vårdkedjeremiss, kontaktbegäran, SIP, discharge planning, HVB notification."""
