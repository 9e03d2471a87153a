"""Master patient index: link every source's patient records to persons (docs/empi.md).

``features`` prepares Chinese-aware comparison columns (Spark SQL plus pypinyin in a pandas
UDF), ``model`` holds the Splink settings, training and the Spark scoring of a trained
model, ``linkage`` blocks and scores candidate pairs, ``clusters`` assigns stable person ids
incrementally, ``review`` is the queue of uncertain pairs and ``propagate`` joins person ids
onto other tables.
"""
