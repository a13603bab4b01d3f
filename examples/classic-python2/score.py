# A Studio (classic) script as it was written in 2016: Python 2.7, pandas 0.18, a Script
# Bundle read through a Windows path. scorepub publishes it unchanged: it is converted to
# Python 3 at publish (print, integer "/") and the removed pandas APIs (.ix, sort(columns=))
# come from the classic compatibility layer.
import matplotlib
matplotlib.use('TkAgg')
import matplotlib.pyplot as plt
import pandas as pd

rates = pd.read_csv('.\\Script Bundle\\rates.csv')


def azureml_main(dataframe1 = None, dataframe2 = None):
    frame = pd.merge(dataframe1, rates, on='region', how='left')
    # Python 2: the per-mille rate of an integer count floors, as classic computed it
    frame['expected'] = frame['customers'] * 0
    for i in xrange(len(frame)):
        frame.ix[i, 'expected'] = frame.ix[i, 'customers'] * frame.ix[i, 'rate_per_mille'] / 1000
    frame = frame.sort(columns='expected', ascending=False)
    print "regions scored:", len(frame)

    plt.bar(range(len(frame)), frame['expected'].values)
    plt.savefig('expected.png')
    return frame,
