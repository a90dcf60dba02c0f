"""Release tools: export a trained model, import a published checkpoint, train an evaluator classifier, print a README table, train on a lent GPU."""
