// module RunQueueEncoding
