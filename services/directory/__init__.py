"""Directory: the verksamhetsbunden overview of units/functions, with a federated replica."""
